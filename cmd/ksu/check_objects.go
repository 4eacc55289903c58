package main

import (
	"errors"
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
// which the dump leaves out, and swapped-out shared memory also appears
// in the Swap that addMemory adds, so it errs on the side of "not
// enough".
func objectBytes(pids []int, seen map[objectKey]bool) uint64 {
	var total uint64
	for _, pid := range pids {
		total += processObjectBytes(pid, seen)
	}
	return total
}

// processObjectBytes is objectBytes for one process.
func processObjectBytes(pid int, seen map[objectKey]bool) uint64 {
	var total uint64
	if maps, err := procfs.ReadMaps(procRoot, pid); err == nil {
		for _, m := range maps {
			if m.Inode != 0 {
				total += mappedBytes(pid, m, seen)
			}
		}
	}
	if fds, err := procfs.FDs(procRoot, pid); err == nil {
		for _, fd := range fds {
			n, _ := carriedBytes(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd), seen)
			total += n
		}
	}
	return total
}

// mappedBytes is carriedBytes for the file behind mapping m of pid.
// Without CAP_SYS_ADMIN, as when an unprivileged user runs ksu check,
// /proc/PID/map_files cannot be opened. A shared or deleted mapping then
// counts its length, the most it can hold of the file.
func mappedBytes(pid int, m procfs.Mapping, seen map[objectKey]bool) uint64 {
	n, err := carriedBytes(fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, m.Start, m.End), seen)
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		return n
	}
	if !m.Perms.Shared && !strings.HasSuffix(m.Path, " (deleted)") {
		return 0
	}
	key := objectKey{dev: unix.Mkdev(m.Major, m.Minor), ino: m.Inode}
	if seen[key] {
		return 0
	}
	seen[key] = true
	return m.Size()
}

// carriedBytes returns the bytes allocated to the regular file that
// path opens, if seen does not hold it yet and the snapshot carries its
// content, and 0 otherwise. It adds the file to seen. The error is that
// of the stat.
func carriedBytes(path string, seen map[objectKey]bool) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, nil
	}
	key := objectKey{dev: st.Dev, ino: st.Ino}
	if seen[key] {
		return 0, nil
	}
	seen[key] = true
	if !carried(path) {
		return 0, nil
	}
	return uint64(st.Blocks) * 512, nil
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
