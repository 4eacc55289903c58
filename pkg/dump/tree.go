package dump

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
)

// maxFreezePasses bounds how often freeze lists the trees again after
// new threads or children appeared while it stopped the known ones.
const maxFreezePasses = 16

// namespaces are the namespace kinds a dumped process must share with
// the dumper, because the restore recreates processes in its own.
//
// The time namespace may differ, because ksu-init puts the restored
// processes in a new one whose offsets continue the clocks that Meta
// records, and those are the clocks the processes read (readMeta). So a
// process that an earlier update restored can be preserved again.
//
// Limitation: ksu restore on the running kernel recreates processes in
// its own time namespace, so processes dumped from a namespace with
// offsets (restored by ksu-init earlier) see their clocks jump by those
// offsets, back when the offsets are positive. Giving ksu restore the
// time namespace step of ksu-init would lift it.
var namespaces = []string{"pid", "mnt", "net", "ipc", "uts", "user", "cgroup"}

// freeze seizes and interrupts every thread of the trees rooted at roots,
// holds each process with h and returns the pids in the order parents
// first.
func freeze(t *ptrace.Tracer, roots []int, h *hold) ([]int, error) {
	for _, pid := range roots {
		if pid == os.Getpid() {
			return nil, &RejectError{PID: pid, Object: "process", Kind: "dumper", Reason: "ksu cannot dump itself"}
		}
	}
	held := map[int]bool{}
	for range maxFreezePasses {
		pids, err := listTrees(roots)
		if err != nil {
			return nil, err
		}
		changed, err := holdAll(t, pids, held, h)
		if err != nil {
			return nil, err
		}
		if !changed {
			return pids, nil
		}
	}
	return nil, fmt.Errorf("freeze: threads or children still appear after %d passes", maxFreezePasses)
}

// holdAll seizes and interrupts every thread of pids, holds each process
// with h and reports whether any thread was new.
func holdAll(t *ptrace.Tracer, pids []int, held map[int]bool, h *hold) (bool, error) {
	changed := false
	for _, pid := range pids {
		if zombie, err := isZombie(pid); err != nil || zombie {
			// A zombie has nothing to hold. One that is gone was reaped
			// before its parent was held, so the trees change.
			changed = changed || err != nil
			continue
		}
		if !held[pid] {
			if err := checkNamespaces(pid); err != nil {
				return false, err
			}
			if err := checkUntraced(pid); err != nil {
				return false, err
			}
		}
		before := len(t.Threads(pid))
		if _, err := t.SeizeProcess(pid, 0); err != nil {
			return false, fmt.Errorf("freeze process %d: %w", pid, err)
		}
		if err := t.InterruptProcess(pid); err != nil {
			return false, fmt.Errorf("freeze process %d: %w", pid, err)
		}
		if err := h.stop(t, pid, held); err != nil {
			return false, err
		}
		tasks, err := procfs.Tasks(procRoot, pid)
		if err != nil {
			return false, fmt.Errorf("freeze process %d: %w", pid, err)
		}
		if len(t.Threads(pid)) != before || len(tasks) != len(t.Threads(pid)) {
			changed = true
		}
		held[pid] = true
	}
	return changed, nil
}

// checkUntraced rejects a process that another tracer holds before the
// seize would fail on it with a bare EPERM.
func checkUntraced(pid int) error {
	st, err := procfs.ReadStatus(procRoot, pid)
	if err != nil {
		return fmt.Errorf("freeze process %d: %w", pid, err)
	}
	if r := checkTracer(pid, st); r != nil {
		return r
	}
	return nil
}

// listTrees returns the roots and all their descendants, parents before
// children.
func listTrees(roots []int) ([]int, error) {
	pids, err := procfs.Descendants(procRoot, roots, 1<<16)
	if err != nil {
		return nil, err
	}
	return pids, nil
}

// checkNamespaces rejects a process that lives in another namespace than
// the dumper in any kind the restore would have to recreate.
func checkNamespaces(pid int) error {
	for _, ns := range namespaces {
		mine, err := nsInode(fmt.Sprintf("%s/self/ns/%s", procRoot, ns))
		if errors.Is(err, os.ErrNotExist) {
			continue // the kernel lacks this namespace kind
		}
		if err != nil {
			return err
		}
		theirs, err := nsInode(fmt.Sprintf("%s/%d/ns/%s", procRoot, pid, ns))
		if err != nil {
			return err
		}
		if mine != theirs {
			// Limitation: processes in their own namespaces are rejected
			// because the restore creates every task in the restorer's
			// namespaces. Recreating the namespaces first (unshare in the
			// stub, with the same ids for pid namespaces) would lift it.
			return &RejectError{PID: pid, Object: "namespace " + ns, Kind: "namespace",
				Reason: "differs from the dumper's; only processes in ksu's own namespaces can be dumped"}
		}
	}
	return nil
}

func nsInode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("stat namespace %s: %w", path, err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino, nil
}
