package procfs

import (
	"os"
	"slices"
	"testing"
)

func TestTasksAndFDs(t *testing.T) {
	tasks, err := Tasks(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{15661, 15671, 15672, 15673, 15674}; !slices.Equal(tasks, want) {
		t.Errorf("Tasks(%d) = %v, want %v", testPid, tasks, want)
	}
	if _, err := FDs(testRoot, testPid); err == nil {
		t.Errorf("FDs(%d) = nil error, want one: the capture has no fd directory", testPid)
	}
	fds, err := FDs("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(fds) || !slices.Contains(fds, 0) {
		t.Errorf("FDs(self) = %v, want increasing order starting with stdin", fds)
	}
}
