package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/procfs"
)

// treeCheck is the result of "ksu check" for one process tree.
type treeCheck struct {
	Root        int       `json:"root"`
	Comm        string    `json:"comm"`
	PIDs        []int     `json:"pids"`
	Preservable bool      `json:"preservable"`
	Blockers    []blocker `json:"blockers"`
	// RSSBytes and AnonBytes sum Rss and Anonymous of smaps_rollup over
	// the tree. SharedBytes estimates the content of the shared memory,
	// memfds, deleted files and tmpfs files of the tree (objectBytes).
	// SnapshotBytes estimates the memory content of the snapshot before
	// compression: Anonymous and Swap of smaps_rollup, plus SharedBytes.
	RSSBytes      uint64 `json:"rss_bytes"`
	AnonBytes     uint64 `json:"anonymous_bytes"`
	SharedBytes   uint64 `json:"shared_bytes_estimate"`
	SnapshotBytes uint64 `json:"snapshot_bytes_estimate"`
}

// blocker is one object that keeps a tree from being preserved, in the
// terms of dump.RejectError, with a hint at what the operator can do.
type blocker struct {
	PID    int    `json:"pid"`
	Object string `json:"object"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	Hint   string `json:"hint,omitempty"`
}

// checkTreesDetail checks each tree rooted at roots without stopping any
// process: its own checks of the roots, kernel threads, zombies and
// namespaces, then the dump's checks of each process's state, tracer,
// mappings and fds, and last the pipes and Unix sockets whose other end
// a process outside all the trees holds (checkPeers).
//
// Limitation: descriptors in flight (SCM_RIGHTS) in a Unix socket's
// queue are found only by the dump, with the tree frozen, so ksu update
// can still reject a tree that ksu check accepts. Peeking at the queues
// from outside would need a copy of each socket (pidfd_getfd), which
// the check avoids so that it stays read-only.
func checkTreesDetail(roots []int) []treeCheck {
	rootBlockers := checkRootsDetail(roots)
	seen := map[objectKey]bool{}
	var out []treeCheck
	for _, root := range roots {
		t := treeCheck{Root: root, PIDs: []int{}, Blockers: append([]blocker{}, rootBlockers[root]...)}
		if st, err := procfs.ReadStat(procRoot, root); err == nil {
			t.Comm = st.Comm
		}
		if len(t.Blockers) == 0 {
			pids, err := listTrees([]int{root})
			t.PIDs = append(t.PIDs, pids...)
			if err != nil {
				t.Blockers = append(t.Blockers, blocker{PID: root, Object: "process tree", Kind: "tree",
					Reason: err.Error(), Hint: "check again once the tree stops changing"})
			}
			for _, pid := range pids {
				t.Blockers = append(t.Blockers, checkProcessDetail(pid, pid == root)...)
			}
			t.addMemory(seen)
		}
		out = append(out, t)
	}
	addPeerBlockers(out, journalStdout)
	for i := range out {
		out[i].Preservable = len(out[i].Blockers) == 0
	}
	return out
}

// checkRootsDetail returns, by root, why a root cannot be preserved:
// init, ksu or one of its ancestors, missing, or given twice.
func checkRootsDetail(roots []int) map[int][]blocker {
	ancestors := map[int]bool{}
	for pid, n := os.Getpid(), 0; pid > 0 && n < maxTreeSize; n++ {
		ancestors[pid] = true
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil {
			break
		}
		pid = st.PPid
	}
	out := map[int][]blocker{}
	seen := map[int]bool{}
	for _, pid := range roots {
		add := func(reason, hint string) {
			out[pid] = append(out[pid], blocker{PID: pid, Object: "process", Kind: "root", Reason: reason, Hint: hint})
		}
		switch {
		case seen[pid]:
			add("given twice", "give each --pid once")
		case pid == 1:
			add("init cannot be preserved, the new kernel starts its own", "give the service's main process instead")
		case ancestors[pid]:
			add("ksu itself or one of its ancestors", "run ksu from a shell outside the tree")
		}
		seen[pid] = true
		if _, err := os.Stat(fmt.Sprintf("%s/%d", procRoot, pid)); err != nil {
			add("not found", "list the running processes with ps")
		}
	}
	return out
}

// checkProcessDetail returns the objects of process pid, the root of its
// tree or not, that ksu update rejects before the freeze. A zombie is
// restored with its exit status for its parent to reap, so only a zombie
// root, whose parent is not preserved, is rejected.
func checkProcessDetail(pid int, root bool) []blocker {
	st, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return []blocker{{PID: pid, Object: "process", Kind: "stat", Reason: err.Error(),
			Hint: "the process may have exited; check again"}}
	}
	var out []blocker
	if st.Flags&pfKthread != 0 {
		out = append(out, blocker{PID: pid, Object: "process", Kind: "kernel thread",
			Reason: "kernel threads belong to the kernel", Hint: "leave kernel threads out of --pid"})
	}
	if st.State == 'Z' && root || st.State == 'X' {
		out = append(out, blocker{PID: pid, Object: "process", Kind: "zombie",
			Reason: "a zombie cannot be the root of a tree", Hint: "preserve its parent instead"})
	}
	if root, err := os.Readlink(fmt.Sprintf("%s/%d/root", procRoot, pid)); err == nil && root != "/" {
		out = append(out, blocker{PID: pid, Object: "root " + root, Kind: "chroot",
			Reason: "not supported yet", Hint: "run the service without chroot"})
	}
	if st.State != 'Z' && st.State != 'X' {
		out = appendNew(out, dumpBlockers(pid)...)
	}
	for _, ns := range treeNamespaces {
		theirs, err1 := os.Readlink(fmt.Sprintf("%s/%d/ns/%s", procRoot, pid, ns))
		ours, err2 := os.Readlink(procRoot + "/self/ns/" + ns)
		if err1 == nil && err2 == nil && theirs != ours {
			out = append(out, blocker{PID: pid, Object: "namespace " + ns, Kind: "namespace",
				Reason: fmt.Sprintf("%s differs from ksu's %s", theirs, ours),
				Hint:   "only processes in ksu's own namespaces can be preserved: run ksu inside them (nsenter) or leave the process out"})
		}
	}
	return out
}

// dumpBlockers returns what pkg/dump would reject of process pid.
func dumpBlockers(pid int) []blocker {
	var out []blocker
	for _, r := range dump.Check(pid) {
		out = append(out, blocker{PID: r.PID, Object: r.Object, Kind: r.Kind, Reason: r.Reason,
			Hint: "close it in the service, or leave this process out"})
	}
	return out
}

// appendNew appends to list each blocker whose pid, object and kind are
// not in it yet, so that an object that two checks find is listed once.
func appendNew(list []blocker, more ...blocker) []blocker {
	for _, b := range more {
		dup := slices.ContainsFunc(list, func(o blocker) bool {
			return o.PID == b.PID && o.Object == b.Object && o.Kind == b.Kind
		})
		if !dup {
			list = append(list, b)
		}
	}
	return list
}

// addMemory sums the tree's memory from smaps_rollup and objectBytes,
// which skips the files in seen. A process that exits meanwhile counts
// as 0.
func (t *treeCheck) addMemory(seen map[objectKey]bool) {
	for _, pid := range t.PIDs {
		m, err := readRollup(procRoot, pid)
		if err != nil {
			continue
		}
		t.RSSBytes += m["Rss"]
		t.AnonBytes += m["Anonymous"]
		t.SnapshotBytes += m["Anonymous"] + m["Swap"]
	}
	t.SharedBytes = objectBytes(t.PIDs, seen)
	t.SnapshotBytes += t.SharedBytes
}

// readRollup reads the kB fields of /proc/PID/smaps_rollup, in bytes.
func readRollup(root string, pid int) (map[string]uint64, error) {
	path := fmt.Sprintf("%s/%d/smaps_rollup", root, pid)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	return parseKBFields(f, path)
}

// parseKBFields parses "Name: 123 kB" lines, as in smaps_rollup and
// meminfo, into bytes by name. Other lines are skipped.
func parseKBFields(r io.Reader, path string) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(value)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s: field %s: %w", path, name, err)
		}
		out[name] = n << 10
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// memoryCheck compares the memory an update needs with MemAvailable.
type memoryCheck struct {
	AvailableBytes uint64 `json:"available_bytes"`
	NeededBytes    uint64 `json:"needed_bytes"`
	Enough         bool   `json:"enough"`
	Problem        string `json:"problem,omitempty"`
}

// checkMemory estimates the memory of an update of trees. The compressed
// snapshot is held about twice on each kernel (the memfd and the loaded
// copy on the old one, the initramfs and its unpacked files on the new
// one), beside the restored processes' memory.
//
// N.B. the estimate takes the snapshot before compression and counts the
// trees' memory although it is already in use on the old kernel, so it
// errs on the side of "not enough".
func checkMemory(root string, trees []treeCheck) memoryCheck {
	var snap, rss uint64
	for _, t := range trees {
		snap += t.SnapshotBytes
		rss += t.RSSBytes
	}
	m := memoryCheck{NeededBytes: 2*snap + rss}
	f, err := os.Open(root + "/meminfo")
	if err != nil {
		m.Problem = fmt.Sprintf("read meminfo: %v", err)
		return m
	}
	defer f.Close()
	info, err := parseKBFields(f, root+"/meminfo")
	if err != nil {
		m.Problem = err.Error()
		return m
	}
	m.AvailableBytes = info["MemAvailable"]
	m.Enough = m.NeededBytes <= m.AvailableBytes
	return m
}
