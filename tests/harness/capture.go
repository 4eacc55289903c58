// Package harness checks a checkpoint and restore of a test workload
// from the outside. It captures what /proc shows of the workload's
// process tree before the dump and after the restore, and compares the
// two captures, accepting only the differences listed in Allowed. It
// runs the whole dump, kill, restore and check cycle through a Runner,
// so the host and QEMU guests share one cycle and one verdict.
package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Tree is a capture of a process tree: its root and every descendant,
// sorted by pid.
type Tree struct {
	Root      int       `json:"root"`
	Processes []Process `json:"processes"`
}

// Process is what /proc shows of one process. Files that cannot be
// read, such as the maps of a zombie, hold "unreadable".
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// Status holds the status lines named in statusFields, and State,
	// reduced to "zombie" or "live".
	Status map[string]string `json:"status"`
	// Stat holds the stat fields named in statFields.
	Stat   map[string]string `json:"stat"`
	Maps   []string          `json:"maps"`
	FDs    map[int]string    `json:"fds"` // fd number to readlink target
	Cwd    string            `json:"cwd"`
	Limits string            `json:"limits"`
	// Threads are sorted by thread id, so the main thread comes first.
	Threads []Thread `json:"threads"`
}

// Thread is what /proc shows of one thread.
type Thread struct {
	TID    int    `json:"tid"`
	Comm   string `json:"comm"`
	SigBlk string `json:"sig_blk"`
	SigPnd string `json:"sig_pnd"`
}

// unreadable is the value recorded for a /proc file that could not be read.
const unreadable = "unreadable"

// statusFields are the lines of /proc/PID/status a capture keeps. The
// others count resources (VmRSS, context switches) or are per user
// (SigQ) and change on their own.
var statusFields = []string{
	"Umask", "PPid", "TracerPid", "Uid", "Gid", "Groups", "NSpid",
	"Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
}

// statFields maps the /proc/PID/stat fields a capture keeps to their
// numbers in proc(5), counted from 1 (pid).
var statFields = map[string]int{
	"pgrp": 5, "session": 6, "tty_nr": 7, "priority": 18, "nice": 19,
	"exit_signal": 38, "rt_priority": 40, "policy": 41,
}

// Capture reads /proc under procRoot (normally "/proc") for root and
// all its descendants. A descendant that exits during the capture is
// left out.
func Capture(procRoot string, root int) (Tree, error) {
	pids, err := descendants(procRoot, root)
	if err != nil {
		return Tree{}, err
	}
	tree := Tree{Root: root}
	for _, pid := range pids {
		p, err := captureProcess(procRoot, pid)
		if err != nil {
			if pid != root && os.IsNotExist(err) {
				continue
			}
			return Tree{}, err
		}
		tree.Processes = append(tree.Processes, p)
	}
	return tree, nil
}

// PIDs returns the pids of the tree's processes.
func (t Tree) PIDs() []int {
	pids := make([]int, len(t.Processes))
	for i, p := range t.Processes {
		pids[i] = p.PID
	}
	return pids
}

// descendants returns root and its descendants, sorted, from the
// children files of every thread.
func descendants(procRoot string, root int) ([]int, error) {
	seen := map[int]bool{root: true}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		tasks, err := os.ReadDir(filepath.Join(procRoot, strconv.Itoa(pid), "task"))
		if err != nil {
			if pid == root {
				return nil, fmt.Errorf("list threads of pid %d: %w", pid, err)
			}
			continue
		}
		for _, task := range tasks {
			data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "task", task.Name(), "children"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(data)) {
				child, err := strconv.Atoi(f)
				if err == nil && !seen[child] {
					seen[child] = true
					queue = append(queue, child)
				}
			}
		}
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids, nil
}

func captureProcess(procRoot string, pid int) (Process, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Process{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Process{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	p := Process{
		PID:    pid,
		Comm:   readTrimmed(filepath.Join(dir, "comm")),
		Status: parseStatus(string(status)),
		Stat:   parseStat(string(stat)),
		Maps:   readLines(filepath.Join(dir, "maps")),
		FDs:    readFDs(filepath.Join(dir, "fd")),
		Cwd:    readLink(filepath.Join(dir, "cwd")),
		Limits: readTrimmed(filepath.Join(dir, "limits")),
	}
	p.Threads = captureThreads(dir)
	return p, nil
}

func captureThreads(dir string) []Thread {
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return nil
	}
	var threads []Thread
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		tdir := filepath.Join(dir, "task", task.Name())
		status, err := os.ReadFile(filepath.Join(tdir, "status"))
		if err != nil {
			continue
		}
		fields := parseStatus(string(status))
		threads = append(threads, Thread{
			TID:    tid,
			Comm:   readTrimmed(filepath.Join(tdir, "comm")),
			SigBlk: fields["SigBlk"],
			SigPnd: fields["SigPnd"],
		})
	}
	sort.Slice(threads, func(i, j int) bool { return threads[i].TID < threads[j].TID })
	return threads
}

// parseStatus returns the statusFields of a status file, and State as
// "zombie" or "live": whether a process runs or sleeps changes by the
// moment, but a zombie must stay one.
func parseStatus(text string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.Join(strings.Fields(value), " ")
		if key == "State" {
			fields[key] = "live"
			if strings.HasPrefix(value, "Z") || strings.HasPrefix(value, "X") {
				fields[key] = "zombie"
			}
			continue
		}
		for _, want := range statusFields {
			if key == want {
				fields[key] = value
			}
		}
	}
	return fields
}

// parseStat returns the statFields of a stat line. The fields are
// counted after the command name, which may contain spaces and ')'.
func parseStat(line string) map[string]string {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return nil
	}
	// The text after ")" starts with field 3 (state).
	rest := strings.Fields(line[end+1:])
	fields := map[string]string{}
	for name, num := range statFields {
		if i := num - 3; i < len(rest) {
			fields[name] = rest[i]
		}
	}
	return fields
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return unreadable
	}
	return strings.TrimSpace(string(data))
}

func readLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{unreadable}
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func readLink(path string) string {
	target, err := os.Readlink(path)
	if err != nil {
		return unreadable
	}
	return target
}

func readFDs(dir string) map[int]string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return map[int]string{-1: unreadable}
	}
	fds := map[int]string{}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds[fd] = readLink(filepath.Join(dir, e.Name()))
	}
	return fds
}
