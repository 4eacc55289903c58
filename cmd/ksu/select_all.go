package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// processInfo is the parent, command name and kind of one process.
type processInfo struct {
	pid, ppid, pgrp int
	comm            string
	kthread         bool
}

// Reasons that --all gives for a process it leaves out by itself.
const (
	reasonKernelThread = "a kernel thread, which belongs to the kernel"
	reasonInit         = "init: the new kernel starts its own"
	reasonKSU          = "ksu itself or its resume guard"
	reasonDaemon       = "one of systemd's own daemons, which the new boot starts again"
	reasonGetty        = "a login prompt, which the new boot starts again"
	reasonBus          = "the system's D-Bus daemon, which the new boot starts again"
	reasonExcluded     = "excluded by name (--exclude or the config file's exclude)"
	reasonPipeline     = "in ksu's process group: another command of the pipeline that runs ksu"
)

// selectAll selects every process except those listed in ownReason,
// their descendants and their ancestors (except init), and the processes
// whose comm is in excludes. Ancestors are left out because a tree is
// always preserved with all its descendants.
func (h host) selectAll(excludes []string) (selected, error) {
	procs, err := h.listProcesses()
	if err != nil {
		return selected{}, fmt.Errorf("--all: %w", err)
	}
	byPID := map[int]processInfo{}
	children := map[int][]int{}
	reasons := map[int]string{}
	var direct []int
	for _, p := range procs {
		byPID[p.pid] = p
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	selfPgrp := byPID[h.self].pgrp
	for _, p := range procs {
		if selfPgrp > 1 && p.pgrp == selfPgrp && p.pid != h.self {
			reasons[p.pid] = reasonPipeline
			direct = append(direct, p.pid)
			continue
		}
		if r := h.ownReason(p, excludes); r != "" {
			reasons[p.pid] = r
			direct = append(direct, p.pid)
		}
	}
	for _, pid := range direct {
		if pid != 1 {
			spreadReason(pid, byPID, children, reasons)
		}
	}

	var sel selected
	members := map[int]bool{}
	for _, p := range procs {
		if r, ok := reasons[p.pid]; ok {
			sel.Skipped = append(sel.Skipped, skipped{PID: p.pid, Comm: p.comm, Reason: r})
		} else {
			members[p.pid] = true
		}
	}
	if len(members) == 0 {
		return sel, fmt.Errorf("--all: no process left after leaving out %d", len(sel.Skipped))
	}
	for pid := range members {
		if !members[byPID[pid].ppid] {
			sel.Roots = append(sel.Roots, pid)
		}
	}
	slices.Sort(sel.Roots)
	trace.Printf("selection: --all: %s in %s, %d left out",
		plural(len(members), "process", "processes"), plural(len(sel.Roots), "tree", "trees"), len(sel.Skipped))
	return sel, nil
}

// spreadReason leaves out the descendants and the ancestors of pid, which
// is left out, with a reason that names it.
func spreadReason(pid int, byPID map[int]processInfo, children map[int][]int, reasons map[int]string) {
	p := byPID[pid]
	queue := slices.Clone(children[pid])
	for n := 0; len(queue) > 0 && n < len(byPID); n++ {
		kid := queue[0]
		queue = queue[1:]
		if _, ok := reasons[kid]; ok {
			continue
		}
		reasons[kid] = fmt.Sprintf("a descendant of process %d (%s), which is left out", pid, p.comm)
		queue = append(queue, children[kid]...)
	}
	ancestor := fmt.Sprintf("an ancestor of process %d (%s), which is left out, "+
		"and a tree is preserved with all its descendants", pid, p.comm)
	if reasons[pid] == reasonKSU {
		ancestor = "an ancestor of ksu, which cannot freeze itself"
	}
	for a, n := p.ppid, 0; a > 1 && n < len(byPID); n++ {
		if _, ok := reasons[a]; !ok {
			reasons[a] = ancestor
		}
		a = byPID[a].ppid
	}
}

// ownReason returns why --all leaves p out for what p is itself, or "".
func (h host) ownReason(p processInfo, excludes []string) string {
	switch {
	case p.kthread || p.pid == 2 || p.ppid == 2:
		return reasonKernelThread
	case p.pid == 1:
		return reasonInit
	case p.pid == h.self || h.isKSU(p.pid):
		return reasonKSU
	case p.comm == "systemd" || p.comm == "(sd-pam)" || strings.HasPrefix(p.comm, "systemd-"):
		return reasonDaemon
	case p.comm == "agetty" || p.comm == "getty":
		return reasonGetty
	case p.comm == "dbus-daemon" || p.comm == "dbus-broker" || p.comm == "dbus-broker-lau":
		return reasonBus
	case slices.Contains(excludes, p.comm):
		return reasonExcluded
	}
	return ""
}

// isKSU reports whether process pid runs the same executable as ksu: a
// resume guard, or another ksu.
func (h host) isKSU(pid int) bool {
	theirs, err1 := os.Stat(filepath.Join(h.proc, strconv.Itoa(pid), "exe"))
	ours, err2 := os.Stat(filepath.Join(h.proc, strconv.Itoa(h.self), "exe"))
	return err1 == nil && err2 == nil && os.SameFile(theirs, ours)
}

// listProcesses reads the stat of every process. A process that exits
// while it is read is skipped.
func (h host) listProcesses() ([]processInfo, error) {
	entries, err := os.ReadDir(h.proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var procs []processInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		st, err := procfs.ReadStat(h.proc, pid)
		if err != nil {
			continue
		}
		procs = append(procs, processInfo{pid: pid, ppid: st.PPid, pgrp: st.Pgrp, comm: st.Comm, kthread: st.Flags&pfKthread != 0})
	}
	return procs, nil
}
