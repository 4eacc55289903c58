package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// path returns root/PID/name.
func path(root string, pid int, name string) string {
	return filepath.Join(root, strconv.Itoa(pid), name)
}

// readFile reads root/PID/name. The error from os.ReadFile already
// names the path.
func readFile(root string, pid int, name string) ([]byte, error) {
	return os.ReadFile(path(root, pid, name))
}

// Tasks returns the thread ids of process pid, in increasing order,
// from the directory root/PID/task.
func Tasks(root string, pid int) ([]int, error) {
	return listIDs(path(root, pid, "task"))
}

// FDs returns the open file descriptors of process pid, in increasing
// order, from the directory root/PID/fd.
func FDs(root string, pid int) ([]int, error) {
	return listIDs(path(root, pid, "fd"))
}

func listIDs(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	ids := make([]int, 0, len(entries))
	for _, e := range entries {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			return nil, fmt.Errorf("list %s: unexpected entry %q", dir, e.Name())
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
