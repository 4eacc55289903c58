package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// initCandidates are tried in order when the command line has no init=,
// the same list the kernel tries.
var initCandidates = []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}

// specialMounts are moved into the new root before switching to it.
var specialMounts = []string{"/dev", "/proc", "/sys", "/run"}

// findInit returns the first of the candidates that is an executable
// regular file inside newRoot. Symbolic links resolve inside newRoot, as
// they will after the switch (a /sbin/init link to /lib/systemd/systemd
// must not resolve in the initramfs).
func findInit(newRoot string, candidates []string) (string, error) {
	root, err := os.Open(newRoot)
	if err != nil {
		return "", fmt.Errorf("find init: %w", err)
	}
	defer root.Close()
	var errs []error
	for _, c := range candidates {
		err := checkExecutable(int(root.Fd()), c)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("find init in %s: %w", newRoot, errors.Join(errs...))
}

// checkExecutable checks that path, resolved inside the directory rootFd,
// is a regular file with an execute bit.
func checkExecutable(rootFd int, path string) error {
	openHow := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	fd, err := unix.Openat2(rootFd, path, &openHow)
	if errors.Is(err, unix.ENOSYS) {
		return checkExistsNoFollow(rootFd, path)
	}
	if err != nil {
		return &os.PathError{Op: "openat2", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file (mode %#o)", path, st.Mode)
	}
	return nil
}

// checkExistsNoFollow is the check for kernels older than 5.6, which lack
// openat2: path must exist inside rootFd, but a symbolic link is not
// followed, since it would resolve in the initramfs.
func checkExistsNoFollow(rootFd int, path string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(rootFd, strings.TrimPrefix(path, "/"), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "fstatat", Path: path, Err: err}
	}
	return nil
}

// switchRoot makes newRoot the root directory: it moves the special mounts
// into it, moves it onto /, changes root into it and frees the initramfs by
// deleting its files. Afterwards the caller execs the real init.
//
// Preconditions: the process is PID 1 of an initramfs, newRoot is a mount
// point, and no other goroutine uses relative paths.
func switchRoot(log klog.Logger, newRoot string) error {
	moveSpecialMounts(log, newRoot)
	if err := unix.Chdir(newRoot); err != nil {
		return &os.PathError{Op: "chdir", Path: newRoot, Err: err}
	}
	oldRoot, err := os.Open("/")
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer oldRoot.Close()
	if err := mount.MoveMount(newRoot, "/"); err != nil {
		return &os.PathError{Op: "mount --move", Path: newRoot, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: newRoot, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	freeInitramfs(log, int(oldRoot.Fd()))
	return nil
}

// moveSpecialMounts moves /dev, /proc, /sys and /run into newRoot,
// creating the directories when needed. A mount that cannot be moved (no
// directory in a read-only root) is detached instead: the real init mounts
// these itself when they are missing, and leaving them behind would keep
// the old root busy.
func moveSpecialMounts(log klog.Logger, newRoot string) {
	for _, m := range specialMounts {
		same, err := mount.SameFilesystem("/", m)
		if err != nil || same {
			continue // not a mount point
		}
		target := filepath.Join(newRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			log.Printf("cannot create %s, detaching %s instead of moving it: %v", target, m, err)
			_ = unix.Unmount(m, unix.MNT_DETACH)
			continue
		}
		if err := mount.MoveMount(m, target); err != nil {
			log.Printf("cannot move %s to %s, detaching it: %v", m, target, err)
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}
}

// freeInitramfs deletes the initramfs files below the directory dirFd
// (the old root) to give their memory back, which matters because the
// snapshot in it can be large. It deletes only on rootfs (ramfs or tmpfs)
// and never crosses into another filesystem. Failures are counted and
// logged, not returned: the switch has already happened.
func freeInitramfs(log klog.Logger, dirFd int) {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dirFd, &fs); err != nil {
		log.Printf("old root left in place: statfs: %v", err)
		return
	}
	if fs.Type != unix.RAMFS_MAGIC && fs.Type != unix.TMPFS_MAGIC {
		log.Printf("old root left in place: filesystem type %#x is not rootfs", fs.Type)
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(dirFd, &st); err != nil {
		log.Printf("old root left in place: stat: %v", err)
		return
	}
	removed, failed := removeContents(dirFd, st.Dev, 0)
	log.Printf("freed the initramfs: %d entries removed, %d failed", removed, failed)
}

// maxRemoveDepth bounds the recursion of removeContents; an initramfs is
// shallow, so a deeper tree is left in place rather than risk the stack.
const maxRemoveDepth = 64

// removeContents removes everything in the directory dirFd that is on the
// device dev, depth first, and returns how many entries it removed and how
// many it could not.
func removeContents(dirFd int, dev uint64, depth int) (removed, failed int) {
	dup, err := unix.Dup(dirFd)
	if err != nil {
		return 0, 1
	}
	dir := os.NewFile(uintptr(dup), "initramfs directory")
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return 0, 1
	}
	for _, name := range names {
		r, f := removeEntry(dirFd, name, dev, depth)
		removed += r
		failed += f
	}
	return removed, failed
}

// removeEntry removes one entry of dirFd, a directory with its contents.
func removeEntry(dirFd int, name string, dev uint64, depth int) (removed, failed int) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, 1
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dirFd, name, 0); err != nil {
			return 0, 1
		}
		return 1, 0
	}
	if st.Dev != dev {
		return 0, 0 // a mount point: its filesystem is not the initramfs
	}
	if depth >= maxRemoveDepth {
		return 0, 1
	}
	child, err := unix.Openat(dirFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 1
	}
	removed, failed = removeContents(child, dev, depth+1)
	unix.Close(child)
	if err := unix.Unlinkat(dirFd, name, unix.AT_REMOVEDIR); err != nil {
		return removed, failed + 1
	}
	return removed + 1, failed
}

// execInit replaces PID 1 with the real init. argv[0] is the init path.
// The arguments and environment that follow are those the kernel gave
// ksu-init (parameters it did not recognize, and everything after "--"),
// as the kernel would have passed them to init directly. It returns only
// on failure.
func execInit(init string) error {
	argv := append([]string{init}, os.Args[1:]...)
	if err := unix.Exec(init, argv, os.Environ()); err != nil {
		return &os.PathError{Op: "exec", Path: init, Err: err}
	}
	return nil
}
