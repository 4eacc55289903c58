package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Children returns the children of every thread of process pid, read from
// root/PID/task/TID/children (CONFIG_PROC_CHILDREN). A thread that exits
// while it is read is skipped.
func Children(root string, pid int) ([]int, error) {
	tids, err := Tasks(root, pid)
	if err != nil {
		return nil, fmt.Errorf("list threads of process %d: %w", pid, err)
	}
	var kids []int
	for _, tid := range tids {
		path := filepath.Join(root, strconv.Itoa(pid), "task", strconv.Itoa(tid), "children")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list children of process %d: %w", pid, err)
		}
		tk, err := parseChildren(string(b))
		if err != nil {
			return nil, fmt.Errorf("list children of thread %d: %w", tid, err)
		}
		kids = append(kids, tk...)
	}
	return kids, nil
}

// parseChildren parses a children file: PIDs in decimal, separated by
// spaces. strconv.Atoi alone would take "-5" and "+5", which no kernel
// writes.
func parseChildren(data string) ([]int, error) {
	var kids []int
	for _, f := range strings.Fields(data) {
		kid, err := strconv.Atoi(f)
		if err != nil || kid <= 0 || f[0] == '+' {
			return nil, fmt.Errorf("invalid pid %q", f)
		}
		kids = append(kids, kid)
	}
	return kids, nil
}

// Descendants returns roots and all their descendants, parents before
// children, each once, and at most max of them. On error it also returns
// the pids found so far, so a caller that must reach every process it can
// (to resume them, say) still has them.
func Descendants(root string, roots []int, max int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	queue := slices.Clone(roots)
	for len(queue) > 0 && len(out) < max {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		kids, err := Children(root, pid)
		if err != nil {
			return out, err
		}
		queue = append(queue, kids...)
	}
	return out, nil
}
