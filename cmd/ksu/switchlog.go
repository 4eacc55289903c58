package main

import (
	"io"
	"os"

	"github.com/ksu-project/ksu/pkg/klog"
)

// switchLog logs the steps of a kernel switch to stderr and to the kernel
// log. The kernel log reaches the console, where the operator and the
// test harness read the last lines before the kexec. The new kernel's
// dmesg does not have them, but the journal of the old boot does.
type switchLog struct {
	stderr *klog.Writer
	kernel *klog.Kmsg
	// onlyKernel stops the stderr copy while filesystems are frozen,
	// because stderr may be a file on one of them.
	onlyKernel bool
}

func newSwitchLog() *switchLog {
	l := &switchLog{stderr: klog.Stderr("ksu"), kernel: klog.NewKmsg("ksu", io.Discard)}
	if f, err := os.OpenFile(klog.DevKmsg, os.O_WRONLY, 0); err == nil {
		l.kernel.AttachKernelLog(f)
	} else {
		l.stderr.Printf("kernel log unavailable, logging to stderr only: %v", err)
	}
	return l
}

// Printf logs one line to both.
func (l *switchLog) Printf(format string, args ...any) {
	l.kernel.Printf(format, args...)
	if !l.onlyKernel {
		l.stderr.Printf(format, args...)
	}
}

// Mark logs a marker line (see phase.Span.Marker) to the kernel log, and
// to stderr with --verbose: the markers are for tools that read the
// console, and the trace shows the same times to a person.
func (l *switchLog) Mark(marker string) {
	l.kernel.Mark("%s", marker)
	if !l.onlyKernel && trace != nil {
		l.stderr.Printf("%s", marker)
	}
}
