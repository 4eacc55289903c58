// Package phase names the phases of a kernel update and records how long
// each took. The report, the logs, the demo and the benchmark all use
// these names, so a figure in one can be found in the others.
package phase

import (
	"fmt"
	"strings"
	"time"
)

// Name is one phase of an update, on the old kernel or the new one.
type Name string

// The phases in the order an update runs them. Add a new phase here, and
// only here.
const (
	Check    Name = "check"    // compare the snapshot's needs with the new kernel
	Freeze   Name = "freeze"   // stop the selected processes, drop their packets
	Dump     Name = "dump"     // write their state into a snapshot
	Compress Name = "compress" // compress the snapshot with zstd
	Load     Name = "load"     // assemble the initramfs, kexec_file_load
	Sync     Name = "sync"     // flush and freeze filesystems
	Kexec    Name = "kexec"    // from reboot(LINUX_REBOOT_CMD_KEXEC) to the new kernel's start
	Boot     Name = "boot"     // from the new kernel's start to ksu-init
	Early    Name = "early"    // mount /dev, /proc, /sys and /run in the initramfs
	Reserve  Name = "reserve"  // take the PIDs and TIDs the snapshot needs
	Modules  Name = "modules"  // load the kernel modules from the initramfs
	Mount    Name = "mount"    // mount the root and the filesystems the processes use
	Network  Name = "network"  // bring back interfaces, addresses and routes
	Restore  Name = "restore"  // recreate the processes, still stopped
	Resume   Name = "resume"   // let them run, lift the packet drop
	Handoff  Name = "handoff"  // switch_root and exec the real init
)

// All lists every phase in order.
var All = []Name{
	Check, Freeze, Dump, Compress, Load, Sync, Kexec,
	Boot, Early, Reserve, Modules, Mount, Network, Restore, Resume, Handoff,
}

// Span is one finished phase.
type Span struct {
	Phase    Name          `json:"phase"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
}

// Timeline records phases as they run. The zero value is ready to use;
// it is not safe for concurrent use.
type Timeline struct {
	Spans   []Span
	current Name
	start   time.Time
}

// Begin ends the running phase, if any, and starts p.
func (t *Timeline) Begin(p Name) {
	t.End()
	t.current, t.start = p, time.Now()
}

// End ends the running phase and returns its span; it returns a zero Span
// when no phase is running.
func (t *Timeline) End() Span {
	if t.current == "" {
		return Span{}
	}
	s := Span{Phase: t.current, Start: t.start, Duration: time.Since(t.start)}
	t.Spans = append(t.Spans, s)
	t.current = ""
	return s
}

// Summary formats the finished phases on one line, e.g.
// "check 3ms, load 412ms, sync 20ms".
func (t *Timeline) Summary() string {
	parts := make([]string, len(t.Spans))
	for i, s := range t.Spans {
		parts[i] = fmt.Sprintf("%s %s", s.Phase, s.Duration.Round(time.Millisecond))
	}
	return strings.Join(parts, ", ")
}

// Marker formats s as the line that ksu and ksu-init print on the console
// and in the kernel log when a phase ends, e.g. "KSU-PHASE load done
// ms=412". Tests and the demo wait for these lines.
func (s Span) Marker() string {
	return fmt.Sprintf("KSU-PHASE %s done ms=%d", s.Phase, s.Duration.Milliseconds())
}

// FailedMarker formats s as the line printed when the phase failed, e.g.
// "KSU-PHASE mount failed ms=30012".
func (s Span) FailedMarker() string {
	return fmt.Sprintf("KSU-PHASE %s failed ms=%d", s.Phase, s.Duration.Milliseconds())
}
