package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// lockPaths are the lock files that ksu update takes.
type lockPaths struct {
	// ksu is ksu's own lock, taken with flock(2). The holder writes its
	// pid into it.
	ksu string
	// dpkg are dpkg's locks in the order apt takes them. dpkg and apt
	// take them with fcntl(2) record locks on the whole file.
	dpkg []string
}

// defaultLocks are the lock files of the running system.
var defaultLocks = lockPaths{
	ksu:  "/run/ksu/lock",
	dpkg: []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"},
}

// heldLocks are lock files that ksu holds until it releases them or the
// kexec ends the old kernel.
type heldLocks struct {
	files []*os.File
}

// release closes the lock files, which drops their locks.
func (h *heldLocks) release() {
	for _, f := range h.files {
		f.Close()
	}
	h.files = nil
}

// acquire takes ksu's lock, so that one ksu update runs at a time, then
// dpkg's locks, so that apt and dpkg cannot change the system while ksu
// updates it. It fails without waiting when one of them is held. The
// dpkg locks are open file description locks (F_OFD_SETLK), which
// conflict with dpkg's process-associated ones, so apt reports them as
// held while ksu runs. A dpkg lock file that does not exist is skipped:
// there is no dpkg to keep out.
func (p lockPaths) acquire() (*heldLocks, error) {
	locks := &heldLocks{}
	f, err := lockKSU(p.ksu)
	if err != nil {
		return nil, err
	}
	locks.files = append(locks.files, f)
	for _, path := range p.dpkg {
		f, err := lockDpkg(path)
		if err != nil {
			locks.release()
			return nil, err
		}
		if f != nil {
			locks.files = append(locks.files, f)
		}
	}
	trace.Printf("locks: holding %s and the dpkg locks %s", p.ksu, strings.Join(p.dpkg, ", "))
	return locks, nil
}

// lockKSU takes an exclusive flock on path and writes ksu's pid into it.
func lockKSU(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readLockHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another ksu%s holds %s: wait for it to finish, then run ksu again", holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write pid into %s: %w", path, err)
	}
	return f, nil
}

// readLockHolder returns " (process PID)" from the pid the holder of
// ksu's lock wrote, or "" when the file holds none yet.
func readLockHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (process %d)", pid)
}

// lockDpkg takes a write lock on all of dpkg lock file path, or returns
// an error that names the holder. It returns nil and no error when path
// does not exist.
func lockDpkg(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open dpkg lock: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		holder := dpkgLockHolder(f)
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s is locked%s: apt or dpkg is running; wait for it to finish, then run ksu again",
				path, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, os.NewSyscallError("fcntl", err))
	}
	return f, nil
}

// dpkgLockHolder returns " by process PID (COMM)" for the process that
// holds a record lock on f, or "" when the kernel does not name one: an
// open file description lock has no process, and the lock may be gone.
func dpkgLockHolder(f *os.File) string {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK || lk.Pid <= 0 {
		return ""
	}
	if st, err := procfs.ReadStat(procRoot, int(lk.Pid)); err == nil {
		return fmt.Sprintf(" by process %d (%s)", lk.Pid, st.Comm)
	}
	return fmt.Sprintf(" by process %d", lk.Pid)
}
