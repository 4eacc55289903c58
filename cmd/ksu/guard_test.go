package main

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// stoppedChild starts sleep and stops it with SIGSTOP.
func stoppedChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, 'T')
	return pid
}

// waitState waits at most 5 s for process pid to reach state want.
func waitState(t *testing.T, pid int, want byte) {
	t.Helper()
	var st procfs.Stat
	var err error
	for range 100 {
		st, err = procfs.ReadStat("/proc", pid)
		if err == nil && st.State == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process %d state %c (error %v), want %c", pid, st.State, err, want)
}

func TestGuardResumesAtEOF(t *testing.T) {
	pid := stoppedChild(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Close() // ksu update died
	var got []int
	status := runGuard("0,"+strconv.Itoa(pid), r, func(roots []int) error {
		got = roots
		return resumeTrees(roots)
	})
	if status != 0 {
		t.Errorf("runGuard() = %d, want 0", status)
	}
	if len(got) != 1 || got[0] != pid {
		t.Errorf("runGuard() cleaned up roots %v, want [%d]", got, pid)
	}
	waitState(t, pid, 'S')
}

func TestGuardDisarmed(t *testing.T) {
	pid := stoppedChild(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write([]byte{guardDisarm}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	called := false
	status := runGuard(strconv.Itoa(pid), r, func([]int) error { called = true; return nil })
	if status != 0 || called {
		t.Errorf("runGuard(disarmed) = %d, cleanup called %t, want 0 and no cleanup", status, called)
	}
	if st, err := procfs.ReadStat("/proc", pid); err != nil || st.State != 'T' {
		t.Errorf("process %d state %c (error %v) after a disarmed guard, want T", pid, st.State, err)
	}
}
