package main

import (
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
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
		return resumeTrees(roots, nil)
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

func TestReadGuardPipe(t *testing.T) {
	inj := ptrace.Injection{TID: 412, Site: 0x7ffd1000, Regs: ptrace.Regs{Rip: 0x401000, Rax: 7}}
	text, err := inj.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	borrow := "borrow " + string(text) + "\n"
	for _, tt := range []struct {
		name, input  string
		wantPhase    string
		wantDisarmed bool
		wantBorrowed []int
	}{
		{"end of file at once", "", "freeze and dump", false, nil},
		{"disarmed at once", "d", "freeze and dump", true, nil},
		{"last phase named", "phase load\nphase sync\n", "sync", false, nil},
		{"disarmed after phases", "phase load\nd", "load", true, nil},
		{"partial line ignored", "phase load\nphase sy", "load", false, nil},
		{"borrow outstanding", borrow, "freeze and dump", false, []int{412}},
		{"borrow returned", borrow + "return 412\n", "freeze and dump", false, nil},
		{"return of another thread", borrow + "return 413\n", "freeze and dump", false, []int{412}},
		{"unknown line skipped", "what\n" + borrow, "freeze and dump", false, []int{412}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := readGuardPipe(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("readGuardPipe(%q) error = %v, want nil", tt.input, err)
			}
			if rec.phase != tt.wantPhase {
				t.Errorf("readGuardPipe(%q) phase = %q, want %q", tt.input, rec.phase, tt.wantPhase)
			}
			if rec.disarmed != tt.wantDisarmed {
				t.Errorf("readGuardPipe(%q) disarmed = %t, want %t", tt.input, rec.disarmed, tt.wantDisarmed)
			}
			got := slices.Sorted(maps.Keys(rec.borrowed))
			if !slices.Equal(got, tt.wantBorrowed) {
				t.Errorf("readGuardPipe(%q) borrowed threads = %v, want %v", tt.input, got, tt.wantBorrowed)
			}
			if b, ok := rec.borrowed[412]; ok && (b.Site != inj.Site || b.Regs != inj.Regs) {
				t.Errorf("readGuardPipe(%q) borrowed[412] = %+v, want %+v", tt.input, b, inj)
			}
		})
	}
}

func TestExitCause(t *testing.T) {
	for _, tt := range []struct {
		before, after int64
		want          string
	}{
		{0, 1, "was killed, most likely by the OOM killer (oom_kill in /sys/fs/cgroup/x/memory.events went from 0 to 1)"},
		{2, 2, "exited or was killed by a signal other than the OOM killer's"},
		{-1, -1, "exited or was killed by a signal other than the OOM killer's"},
		{-1, 3, "exited or was killed by a signal other than the OOM killer's"},
	} {
		if got := exitCause("/sys/fs/cgroup/x", tt.before, tt.after); got != tt.want {
			t.Errorf("exitCause(x, %d, %d) = %q, want %q", tt.before, tt.after, got, tt.want)
		}
	}
}

func TestOOMKills(t *testing.T) {
	dir := t.TempDir()
	events := "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"
	if err := os.WriteFile(dir+"/memory.events", []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := oomKills(dir); got != 2 {
		t.Errorf("oomKills(%q) = %d, want 2", dir, got)
	}
	if got := oomKills(dir + "/missing"); got != -1 {
		t.Errorf("oomKills(missing) = %d, want -1", got)
	}
	if got := oomKills(""); got != -1 {
		t.Errorf(`oomKills("") = %d, want -1`, got)
	}
}
