package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// reportFile is the report of the restore, in the new root's /run, which
// the real init finds mounted (systemd keeps an existing /run tmpfs).
const reportFile = "/run/ksu/report.json"

// restorerTimeout bounds the restore; the boot goes on without the
// processes after it. A restore of a few GiB under software emulation
// takes minutes, not tens of them.
const restorerTimeout = 10 * time.Minute

// report is /run/ksu/report.json.
type report struct {
	Kernel         string `json:"kernel"`
	SnapshotKernel string `json:"snapshot_kernel"`
	// Restored lists the pids that run again; Failures the ones that
	// do not, with the reason.
	Restored []int32       `json:"restored"`
	Failures []failure     `json:"failures"`
	Phases   []phase.Span  `json:"phases"`
	Clocks   *clockOffsets `json:"clocks,omitempty"`
	// Pause runs from the snapshot's CLOCK_REALTIME stamp, taken by the
	// dump after the freeze, to the resume, both read with
	// CLOCK_REALTIME; see computeOffsets for its precision.
	Pause     time.Duration `json:"pause_ns"`
	Threads   int           `json:"threads"`
	PageBytes uint64        `json:"page_bytes"`
	// Tmpfs counts the tmpfs content that the restore recreated.
	Tmpfs *tmpfsReport `json:"tmpfs,omitempty"`
	// Rollback is set on the old kernel after ksu-init rolled back to it
	// from a kernel where the restore failed.
	Rollback *rollbackNote `json:"rollback,omitempty"`
	// Units are the systemd services that are not started on this boot
	// because restored processes run in their cgroups (units.go).
	Units []heldUnit `json:"units,omitempty"`
}

// failure is a set of processes that were not restored, and why. Root
// and Comm name the process tree when only that tree failed; they are
// empty when the whole restore failed.
type failure struct {
	Root   int32   `json:"root,omitempty"`
	Comm   string  `json:"comm,omitempty"`
	PIDs   []int32 `json:"pids"`
	Reason string  `json:"reason"`
}

// restoreProcesses runs the restorer child, waits for it and writes the
// report. When ksu update left a rollback ready and the restore failed
// before any process ran, it kexecs back into the old kernel (rollback.go).
// Otherwise a failed restore is logged and reported, never returned: the
// boot goes on to the real init without the processes. A tree that
// fails alone is removed by the restorer and reported, and the other
// trees run (see restore.Restore for the failures that still take every
// tree).
func (b *boot) restoreProcesses(hdr snapshot.ArchiveHeader) {
	// The restorer works inside the new root; it needs /proc and /dev
	// there. switchRoot finds them already moved and moves the rest.
	moveSpecialMounts(b.log, initramfs.NewRootDir)
	mountCgroup2(b.log)
	start := time.Now()
	res, err := b.runRestorer()
	if reason, ok := rollbackReason(res, err); ok && rollbackReady("/") {
		rerr := b.rollBack(reason, res) // returns only on failure
		b.log.Logf(klog.LevelErr, "rollback to the old kernel failed, booting without the processes: %v", rerr)
	}
	// The restorer lifts the drop of the network stage once the sockets
	// are rebuilt; after a failed restore nothing else would.
	if uerr := netlock.Unlock(); uerr != nil {
		b.log.Logf(klog.LevelErr, "%v", uerr)
	}
	rep := report{Kernel: runningRelease(), SnapshotKernel: hdr.KernelRelease, Phases: b.timeline.Spans}
	rep.Rollback = b.rolledBack()
	if err == nil && !res.Restored {
		err = fmt.Errorf("%s", res.Error)
	}
	if err != nil {
		b.log.Logf(klog.LevelErr, "processes %s not restored, booting without them: %v", joinPIDs(res.PIDs), err)
		rep.Failures = []failure{{PIDs: res.PIDs, Reason: err.Error()}}
		if len(res.Failed) > 0 && len(restoredPIDs(res)) == 0 {
			rep.Failures = res.Failed // every tree failed on its own
		}
	} else {
		for _, f := range res.Failed {
			b.log.Logf(klog.LevelErr, "processes %s not restored, booting without them: %s", joinPIDs(f.PIDs), f.Reason)
		}
		rep = b.restored(rep, res, start)
	}
	if err := writeJSON(filepath.Join(initramfs.NewRootDir, reportFile), rep); err != nil {
		b.log.Logf(klog.LevelErr, "%v", err)
	}
}

// restored logs the restore and resume markers and completes the report
// of a successful restore. The resume phase runs from the moment the last
// task resumed to the restorer's exit, when PID 1 adopts the restored
// roots.
func (b *boot) restored(rep report, res restoreResult, start time.Time) report {
	// The stage prints the restore marker when it ends; the report's
	// restore span is restore.Restore's own time.
	resume := phase.Span{Phase: phase.Resume, Start: res.ResumedAt, Duration: max(time.Since(res.ResumedAt), 0)}
	b.log.Mark("%s", resume.Marker())
	rep.Phases = append(rep.Phases, phase.Span{Phase: phase.Restore, Start: start, Duration: res.Restore}, resume)
	rep.Restored, rep.Failures = restoredPIDs(res), res.Failed
	rep.Clocks = &res.Clocks
	rep.Pause = res.ResumedAt.Sub(res.SnapshotAt)
	rep.Threads, rep.PageBytes = res.Threads, res.Pages
	rep.Tmpfs = res.Tmpfs
	rep.Units = holdUnits(b.log, initramfs.NewRootDir, rep.Restored, b.cfg.hold)
	b.log.Printf("restored processes %s; pause since the snapshot %v", joinPIDs(rep.Restored), rep.Pause.Round(time.Millisecond))
	return rep
}

// restoredPIDs returns the processes of the snapshot that are not in a
// failed tree.
func restoredPIDs(res restoreResult) []int32 {
	failed := map[int32]bool{}
	for _, f := range res.Failed {
		for _, pid := range f.PIDs {
			failed[pid] = true
		}
	}
	var pids []int32
	for _, pid := range res.PIDs {
		if !failed[pid] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// runRestorer starts /init as the restorer, waits for it and returns its
// result.
func (b *boot) runRestorer() (restoreResult, error) {
	var res restoreResult
	pid, done, err := b.sup.start([]string{"/init", restorerArg}, true)
	if err != nil {
		return res, err
	}
	b.log.Printf("restorer started as process %d", pid)
	var ws unix.WaitStatus
	select {
	case ws = <-done:
	case <-time.After(restorerTimeout):
		b.log.Logf(klog.LevelErr, "restorer %d still running after %v, killing it", pid, restorerTimeout)
		_ = unix.Kill(pid, unix.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		return res, fmt.Errorf("restore timed out after %v", restorerTimeout)
	}
	path := filepath.Join(initramfs.NewRootDir, resultFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return res, fmt.Errorf("restorer %d: %s, and no result: %w", pid, describeWaitStatus(ws), err)
	}
	_ = os.Remove(path)
	if err := json.Unmarshal(data, &res); err != nil {
		return res, fmt.Errorf("decode restore result %s: %w", path, err)
	}
	return res, nil
}

// runningRelease returns the running kernel's release, or "".
func runningRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// mountCgroup2 mounts the cgroup v2 hierarchy on the new root's
// /sys/fs/cgroup, where the restore moves the processes into their
// cgroups. systemd uses a cgroup2 mount it finds there.
func mountCgroup2(log klog.Logger) {
	target := filepath.Join(initramfs.NewRootDir, cgroupRoot)
	if err := unix.Mount("cgroup2", target, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		log.Printf("mount cgroup2 on %s: %v; restored processes cannot join their cgroups", target, err)
	}
}
