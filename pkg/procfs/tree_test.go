package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestDescendantsOfSelf(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("skipping: cannot start a child: %v", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	pids, err := Descendants("/proc", []int{os.Getpid()}, 1<<16)
	if err != nil {
		t.Fatalf("Descendants(/proc, self) = %v, want nil error", err)
	}
	if len(pids) == 0 || pids[0] != os.Getpid() {
		t.Errorf("Descendants(/proc, self) = %v, want self first", pids)
	}
	if !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("Descendants(/proc, self) = %v, want it to contain child %d", pids, cmd.Process.Pid)
	}
	if got, _ := Descendants("/proc", []int{os.Getpid()}, 1); len(got) != 1 {
		t.Errorf("Descendants(max 1) = %v, want one pid", got)
	}
}
