package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// objectKey is the identity of a file: its device and inode.
type objectKey struct {
	dev, ino uint64
}

// objectBytes estimates the content that the snapshot carries once per
// file rather than per process: shared memory (MAP_SHARED|MAP_ANONYMOUS
// and /dev/shm), memfds, deleted files and files on a tmpfs, which the
// processes pids map or hold open. It counts the blocks each file has
// allocated, because the dump skips holes. seen holds the files counted
// so far, for all trees, so a file that two trees use counts once.
//
// N.B. it counts the tmpfs files under /run/systemd and /run/udev too,
// which the dump leaves out, so it errs on the side of "not enough".
func objectBytes(pids []int, seen map[objectKey]bool) uint64 {
	var total uint64
	for _, pid := range pids {
		for _, path := range objectPaths(pid) {
			total += carriedBytes(path, seen)
		}
	}
	return total
}

// objectPaths returns /proc paths that open each file that process pid
// maps or holds open. A process that exits meanwhile has none.
func objectPaths(pid int) []string {
	var paths []string
	if maps, err := procfs.ReadMaps(procRoot, pid); err == nil {
		for _, m := range maps {
			if m.Inode != 0 {
				paths = append(paths, fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, m.Start, m.End))
			}
		}
	}
	if fds, err := procfs.FDs(procRoot, pid); err == nil {
		for _, fd := range fds {
			paths = append(paths, fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd))
		}
	}
	return paths
}

// carriedBytes returns the bytes allocated to the regular file that
// path opens, if seen does not hold it yet and the snapshot carries its
// content, and 0 otherwise. It adds the file to seen.
func carriedBytes(path string, seen map[objectKey]bool) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0
	}
	key := objectKey{dev: st.Dev, ino: st.Ino}
	if seen[key] {
		return 0
	}
	seen[key] = true
	if !carried(path) {
		return 0
	}
	return uint64(st.Blocks) * 512
}

// carried reports whether the snapshot carries the content of the file
// that path opens: one on a tmpfs (which shared memory and memfds are
// too) or one that was deleted. Other files are opened again by name.
func carried(path string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		return true
	}
	target, err := os.Readlink(path)
	return err == nil && strings.HasSuffix(target, " (deleted)")
}
