package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/kexec"
	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// procRoot is the proc mount that the pre-check reads.
const procRoot = "/proc"

// maxTreeSize bounds the walk of the trees to preserve.
const maxTreeSize = 1 << 16

// treeNamespaces are the namespaces a preserved process must share with
// ksu, because ksu-init recreates the processes in its own ones.
var treeNamespaces = []string{"pid", "mnt", "net", "ipc", "uts", "user", "cgroup"}

// checkTrees checks, before anything is frozen, that the trees rooted at
// roots can be preserved, with the checks ksu check runs. It returns one
// error listing every blocking object found, or nil. The dump checks
// each object again while the processes are frozen. This pass only makes
// the common rejections cheap. It also returns the bytes of the
// processes' own pages that ksu check estimates the dump will write,
// without the shared objects, whose progress the dump does not report.
func checkTrees(roots []int) (uint64, error) {
	if len(roots) == 0 {
		return 0, nil
	}
	var reasons []string
	var pageBytes uint64
	pids := 0
	for _, t := range checkTreesDetail(roots) {
		pids += len(t.PIDs)
		pageBytes += t.SnapshotBytes - t.SharedBytes
		for _, b := range t.Blockers {
			reasons = append(reasons, fmt.Sprintf("process %d: %s (%s): %s", b.PID, b.Object, b.Kind, b.Reason))
		}
	}
	trace.Printf("check: %s in %s %v, %s",
		plural(pids, "process", "processes"), plural(len(roots), "tree", "trees"), roots,
		plural(len(reasons), "reason to reject", "reasons to reject"))
	if len(reasons) > 0 {
		return 0, fmt.Errorf("cannot preserve the requested processes, nothing was changed:\n  %s",
			strings.Join(reasons, "\n  "))
	}
	return pageBytes, nil
}

// pfKthread is PF_KTHREAD of the flags in /proc/PID/stat.
const pfKthread = 0x00200000

// listTrees returns the pids of the trees rooted at roots, parents
// first. On error it also returns the pids found so far.
func listTrees(roots []int) ([]int, error) {
	return procfs.Descendants(procRoot, roots, maxTreeSize)
}

// dumpIntoInitrd freezes the trees rooted at roots and writes their
// snapshot into initrd as a cpio archive in initramfs.SnapshotDir. It
// logs the freeze and dump markers. When the dump succeeds, it returns
// the processes stopped and still traced, also if a later step fails
// and resumes them: the caller detaches them with detachDumped. When the
// dump fails, Dump has already let them run on, unless it left them
// stopped (dump.ErrLeftStopped), and then they may still be traced.
func dumpIntoInitrd(initrd *kexec.Initrd, roots []int, stopped jobStops, journal ptrace.Journal, log *switchLog) (*dump.Traced, error) {
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	cw, err := snapshot.NewCPIOWriter(initrd, dir, 0)
	if err != nil {
		return nil, err
	}
	fw := &failpointWriter{w: cw, name: "freeze"}
	opts := dump.Options{PIDs: roots, Exit: dump.ExitTraced, Producer: "ksu update", Journal: journal}
	w := progress.trackDump(fw, &opts)
	stats, err := dumpRetrying(func() (dump.Stats, error) { return dump.Dump(w, opts) }, fw, log)
	progress.clear()
	if err != nil {
		// Traced is set when Dump left the processes stopped.
		return stats.Traced, err
	}
	if err := failpoint.Check("dump"); err != nil {
		return stats.Traced, errors.Join(err, resumeTrees(roots, stopped))
	}
	log.Mark(phase.Span{Phase: phase.Freeze, Duration: stats.Freeze}.Marker())
	log.Mark(phase.Span{Phase: phase.Dump, Duration: stats.Total - stats.Freeze}.Marker())
	traceDump(stats)
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return stats.Traced, errors.Join(fmt.Errorf("read kernel release: %w", err), resumeTrees(roots, stopped))
	}
	hdr, err := cw.Finish(snapshot.ArchiveHeader{KernelRelease: unix.ByteSliceToString(uts.Release[:]), Size: stats.Size})
	if err == nil {
		err = failpoint.Check("compress")
	}
	if err != nil {
		return stats.Traced, errors.Join(err, resumeTrees(roots, stopped))
	}
	log.Printf("snapshot: %s, %s, %d bytes of memory, %d bytes compressed in %d parts",
		plural(stats.Processes, "process", "processes"), plural(stats.Threads, "thread", "threads"), stats.Pages, hdr.CompressedSize, hdr.Parts)
	return stats.Traced, nil
}

// detachDumped detaches ksu from the processes that dumpIntoInitrd left
// traced. Call it after resumeTrees, when the kexec did not happen: the
// SIGCONT that resumeTrees sends while the processes are still traced
// withdraws their pending SIGSTOP. A shell outside the trees then gets
// no stop report for its foreground job, as it would after a detach
// first.
func detachDumped(traced *dump.Traced, log *switchLog) {
	if err := traced.Detach(); err != nil {
		log.Printf("%v", err)
	}
}

// jobStops is the set of processes that a signal had stopped before the
// freeze, such as a shell's suspended job. After a failed switch they
// stay stopped.
type jobStops map[int]bool

// findJobStops returns the processes of the trees rooted at roots that a
// signal has stopped. Call it before the freeze: a process that the dump
// traces shows state t whether or not it was stopped before.
func findJobStops(roots []int) jobStops {
	pids, _ := listTrees(roots)
	stopped := jobStops{}
	for _, pid := range pids {
		if st, err := procfs.ReadStat(procRoot, pid); err == nil && st.State == 'T' {
			stopped[pid] = true
		}
	}
	return stopped
}

// resumeTrees gives back the TCP connections of every process of the
// trees rooted at roots and sends SIGCONT to each one but those in
// stopped: the dump left them stopped, with their connections in repair
// mode, and after a failed switch they run on.
func resumeTrees(roots []int, stopped jobStops) error {
	pids, err := listTrees(roots)
	// Connections first: a process must not run while its sockets are
	// still in repair mode behind the packet drop.
	err = errors.Join(err, dump.ReleaseConnections(pids))
	for _, pid := range pids {
		if stopped[pid] {
			continue
		}
		if kerr := unix.Kill(pid, unix.SIGCONT); kerr != nil && !errors.Is(kerr, unix.ESRCH) {
			err = errors.Join(err, fmt.Errorf("resume process %d: %w", pid, kerr))
		}
	}
	if err != nil {
		return fmt.Errorf("resume preserved processes: %w", err)
	}
	return nil
}

// maxDumpTries bounds the dumps of one update, and dumpRetryDelay is the
// wait between two: connections that wait in a listener's accept queue
// reject a dump that leaves the processes running, and a busy server
// usually accepts them within milliseconds.
const (
	maxDumpTries   = 3
	dumpRetryDelay = 300 * time.Millisecond
)

// dumpRetrying runs dumpOnce again while it fails with a transient
// rejection (dump.IsTransient) before writing anything to fw. Between
// tries the processes run on, as after any failed dump.
func dumpRetrying(dumpOnce func() (dump.Stats, error), fw *failpointWriter, log *switchLog) (dump.Stats, error) {
	for try := 1; ; try++ {
		stats, err := dumpOnce()
		if err == nil || try == maxDumpTries || !dump.IsTransient(err) || fw.checked {
			return stats, err
		}
		log.Printf("dump %d of at most %d: %v; the processes run again, next dump in %v",
			try, maxDumpTries, err, dumpRetryDelay)
		time.Sleep(dumpRetryDelay)
	}
}

// failpointWriter checks a failpoint before the first write. Dump writes
// only once the processes are frozen, so the failpoint "freeze" fails
// the dump with the processes seized and stopped.
type failpointWriter struct {
	w       io.Writer
	name    string
	checked bool
}

func (f *failpointWriter) Write(p []byte) (int, error) {
	if !f.checked {
		f.checked = true
		if err := failpoint.Check(f.name); err != nil {
			return 0, err
		}
	}
	return f.w.Write(p)
}
