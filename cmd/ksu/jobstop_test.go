package main

import (
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// TestResumeKeepsJobStops checks that resumeTrees leaves stopped a
// process that was stopped before the freeze, and resumes the others.
func TestResumeKeepsJobStops(t *testing.T) {
	job := stoppedChild(t)
	other := stoppedChild(t)
	stopped := findJobStops([]int{job})
	if !stopped[job] {
		t.Fatalf("findJobStops(%d) = %v, want it to contain %d", job, stopped, job)
	}

	if err := resumeTrees([]int{job, other}, stopped); err != nil {
		t.Fatal(err)
	}

	waitState(t, other, 'S')
	time.Sleep(100 * time.Millisecond) // a SIGCONT would have run the job by now
	st, err := procfs.ReadStat("/proc", job)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'T' {
		t.Errorf("process %d state %c after resumeTrees, want T (stopped before the freeze)", job, st.State)
	}
}
