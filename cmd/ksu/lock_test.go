package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testLocks returns lock paths in a temporary root, with dpkg's lock
// files created as dpkg leaves them.
func testLocks(t *testing.T) lockPaths {
	t.Helper()
	root := t.TempDir()
	p := lockPaths{
		ksu:  filepath.Join(root, "run/ksu/lock"),
		dpkg: []string{filepath.Join(root, "lock-frontend"), filepath.Join(root, "lock")},
	}
	for _, path := range p.dpkg {
		if err := os.WriteFile(path, nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestLockOneKSU(t *testing.T) {
	p := testLocks(t)
	first, err := p.acquire()
	if err != nil {
		t.Fatalf("acquire() = %v, want nil error", err)
	}
	_, err = p.acquire()
	want := fmt.Sprintf("another ksu (process %d) holds %s", os.Getpid(), p.ksu)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("acquire() while held = %v, want an error containing %q", err, want)
	}
	first.release()
	second, err := p.acquire()
	if err != nil {
		t.Fatalf("acquire() after release = %v, want nil error", err)
	}
	second.release()
}

// holdRecordLock takes a process-associated write lock on path, as dpkg
// does, and drops it when the test ends.
func holdRecordLock(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
}

func TestLockRejectsDpkg(t *testing.T) {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p := testLocks(t)
		holdRecordLock(t, p.dpkg[i])
		_, err := p.acquire()
		want := fmt.Sprintf("%s is locked by process %d (%s): apt or dpkg is running; wait for it to finish",
			p.dpkg[i], os.Getpid(), strings.TrimSpace(string(comm)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("acquire() with %s held = %v, want an error containing %q", p.dpkg[i], err, want)
		}
		// The failed attempt must not keep ksu's own lock.
		f, err := lockKSU(p.ksu)
		if err != nil {
			t.Errorf("lockKSU() after a rejected acquire() = %v, want nil error", err)
		} else {
			f.Close()
		}
	}
}

func TestLockHoldsDpkg(t *testing.T) {
	p := testLocks(t)
	locks, err := p.acquire()
	if err != nil {
		t.Fatalf("acquire() = %v, want nil error", err)
	}
	defer locks.release()
	// A dpkg starting now must find its lock taken, as with F_SETLK.
	for _, path := range p.dpkg {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		f.Close()
		if err == nil {
			t.Errorf("F_SETLK on %s while ksu holds it = nil error, want EAGAIN or EACCES", path)
		}
	}
}

func TestLockDpkgMissing(t *testing.T) {
	root := t.TempDir()
	p := lockPaths{ksu: filepath.Join(root, "lock"), dpkg: []string{filepath.Join(root, "no-dpkg")}}
	locks, err := p.acquire()
	if err != nil {
		t.Fatalf("acquire() without dpkg = %v, want nil error", err)
	}
	locks.release()
}
