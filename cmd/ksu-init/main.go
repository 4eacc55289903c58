// Command ksu-init is PID 1 of the initramfs that ksu update boots the new
// kernel with, and of a guest's first boot, where there is no snapshot.
//
// It runs these stages, each logged to the kernel log and the console with
// its duration, and each ending with a console line
// "KSU-PHASE <name> done ms=<n>" (the names are those of pkg/phase):
//
//	early    devtmpfs on /dev, proc, sysfs, tmpfs on /run; open the kernel log
//	modules  load /lib/modules/$(uname -r)/ksu-modules.load with finit_module
//	mount    find root= (waiting up to ksu.rootwait= seconds) and mount it
//	network  bring back the snapshot's links, addresses and routes, and
//	         drop the packets of its TCP connections until the restore
//	restore  recreate the processes of the snapshot, if any, in a child
//	         (/init ksu-restorer) and write /run/ksu/report.json
//	handoff  move /dev, /proc, /sys, /run into the root, switch_root, exec init
//
// Kernel command line parameters: root=, rootfstype=, rootflags=, ro, rw
// and init= as the kernel defines them; ksu.rootwait=SECONDS (default 30);
// ksu.onfail=reboot|poweroff|halt, what to do after a fatal error (default
// reboot); ksu.debug for more detail.
//
// The snapshot, if any, is an archive whose files the kernel unpacks into
// initramfs.SnapshotDir (/ksu) of the initramfs; see pkg/snapshot.
//
// The snapshot holds the memory of the preserved processes. After the
// restore, ksu-init overwrites the archive's files with zeros and removes
// them, before the handoff (wipe.go). With ksu update --wipe-free-memory
// the new kernel gets init_on_free=1 and zeroes every page it frees: the
// restorer's decompression buffers when it exits, ksu-init's own heap
// when it execs the real init, and the rest of the initramfs when
// switch_root frees it. Without it, those freed pages keep decompressed
// process memory until they are reused, like the old kernel's RAM. The
// memory-scan guest test checks the result on Debian's 6.1 and 6.12
// cloud kernels, which both accept the parameter but do not turn it on
// by default.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"time"

	"github.com/ksu-project/ksu/pkg/klog"
	"golang.org/x/sys/unix"
)

func main() {
	if os.Getpid() != 1 && len(os.Args) >= 2 && os.Args[1] == restorerArg {
		os.Exit(runRestorer())
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "ksu-init: refusing to run: it must be PID 1, the init of an initramfs")
		os.Exit(2)
	}
	log := klog.NewKmsg("ksu-init", os.Stdout)
	ignoreTerminalSignals(log)
	b := newBoot(log)
	b.run()
}

// ignoreTerminalSignals keeps signals from ending PID 1. The kernel does
// not deliver a signal to init that init leaves at its default action. But
// the Go runtime installs its own handlers, and for SIGTERM, SIGINT (sent
// on Ctrl-Alt-Del when that is disabled) and similar signals the handler
// exits the process, which panics the kernel.
//
// N.B. The signals are caught and dropped rather than set to SIG_IGN,
// because an ignored signal stays ignored across exec and the real init
// must start with the default actions.
func ignoreTerminalSignals(log klog.Logger) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGPIPE, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	go func() {
		for s := range sigs {
			log.Printf("ignoring %v sent to PID 1", s)
		}
	}()
}

// sinceKernelStart returns CLOCK_BOOTTIME, the time since this kernel
// started (a kexec restarts it), or 0 if it cannot be read.
func sinceKernelStart() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// fail handles a fatal error: it logs it to the kernel log and the
// console, then reboots, powers off or halts as ksu.onfail= requests. It never
// returns, because PID 1 must not exit.
func (b *boot) fail(where string, err error) {
	b.log.Logf(klog.LevelCrit, "fatal error in %s: %v", where, err)
	b.log.Mark("KSU-FATAL %s: %v", where, err)
	cmd := map[failAction]int{
		failReboot:   unix.LINUX_REBOOT_CMD_RESTART,
		failPoweroff: unix.LINUX_REBOOT_CMD_POWER_OFF,
		failHalt:     unix.LINUX_REBOOT_CMD_HALT,
	}[b.cfg.onFail]
	b.log.Logf(klog.LevelCrit, "ksu.onfail=%s: syncing and doing it now", b.cfg.onFail)
	unix.Sync()
	rerr := unix.Reboot(cmd)
	b.log.Logf(klog.LevelCrit, "reboot(%s) failed: %v; staying here", b.cfg.onFail, rerr)
	// N.B. An endless wait, not a bounded loop: PID 1 has nowhere to go,
	// and exiting would panic the kernel.
	for {
		time.Sleep(time.Hour)
	}
}

// recoverPanic turns a panic in the boot goroutine into a fatal error, so
// that the fallback of ksu.onfail= still runs.
func (b *boot) recoverPanic() {
	if r := recover(); r != nil {
		b.fail("ksu-init", fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
	}
}
