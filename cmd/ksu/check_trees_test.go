package main

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckTreeNamesFD checks that ksu check names an fd that the dump
// would reject, found by the dump's own checks: an inotify instance that
// the child inherits as fd 3.
func TestCheckTreeNamesFD(t *testing.T) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("skipping: inotify_init1: %v", err)
	}
	inotify := os.NewFile(uintptr(ifd), "inotify")
	defer inotify.Close()
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{inotify}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid

	trees := checkTreesDetail([]int{pid})

	if len(trees) != 1 {
		t.Fatalf("checkTreesDetail(%d) returned %d trees, want 1", pid, len(trees))
	}
	if trees[0].Preservable {
		t.Errorf("checkTreesDetail(%d).Preservable = true, want false", pid)
	}
	var found bool
	for _, b := range trees[0].Blockers {
		if b.PID == pid && b.Object == "fd 3" && b.Kind == "inotify" {
			found = true
		}
	}
	if !found {
		t.Errorf("checkTreesDetail(%d) blockers = %+v, want fd 3 (inotify)", pid, trees[0].Blockers)
	}
}

func TestAppendNewBlockers(t *testing.T) {
	a := blocker{PID: 7, Object: "root /srv", Kind: "chroot", Hint: "run the service without chroot"}
	b := blocker{PID: 7, Object: "fd 3", Kind: "inotify"}

	got := appendNew([]blocker{a}, blocker{PID: 7, Object: "root /srv", Kind: "chroot"}, b)

	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("appendNew() = %+v, want [%+v %+v]", got, a, b)
	}
}
