package main

import (
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/klog/klogtest"
	"golang.org/x/sys/unix"
)

// waitTimeout bounds every wait for a child in these tests.
const waitTimeout = 10 * time.Second

func TestSupervisorStartAndReap(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipping: no sh")
	}
	s := newSupervisor(klogtest.New(t))
	defer s.stop()
	_, done, err := s.start([]string{sh, "-c", "exit 3"}, false)
	if err != nil {
		t.Fatalf("start(sh -c 'exit 3') = %v, want nil error", err)
	}
	select {
	case ws := <-done:
		if !ws.Exited() || ws.ExitStatus() != 3 {
			t.Errorf("start(sh -c 'exit 3') status = %s, want exit status 3", describeWaitStatus(ws))
		}
	case <-time.After(waitTimeout):
		t.Fatalf("start(sh -c 'exit 3'): no status after %v", waitTimeout)
	}
}

func TestSupervisorReapsOrphans(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipping: no sh")
	}
	// Become the reaper of orphaned descendants, as PID 1 is.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER) = %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	s := newSupervisor(klogtest.New(t))
	defer s.stop()
	// The shell leaves a background child behind that outlives it.
	_, done, err := s.start([]string{sh, "-c", "sleep 0.2 & exit 0"}, false)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	deadline := time.Now().Add(waitTimeout)
	for {
		s.mu.Lock()
		orphans := s.orphans
		s.mu.Unlock()
		if orphans == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphans reaped = %d after %v, want 1", orphans, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeWait4 records the PIDs waited for and reports the PIDs in exited as
// having exited with status 0.
type fakeWait4 struct {
	waited []int
	exited []int
}

func (f *fakeWait4) wait4(pid int, ws *unix.WaitStatus, _ int, _ *unix.Rusage) (int, error) {
	f.waited = append(f.waited, pid)
	for i, p := range f.exited {
		if pid == -1 || pid == p {
			f.exited = slices.Delete(f.exited, i, i+1)
			*ws = 0
			return p, nil
		}
	}
	if pid == -1 {
		return 0, unix.ECHILD
	}
	return 0, nil
}

func TestSupervisorWaitsOnlyForKnownChildrenWhileTracing(t *testing.T) {
	fake := &fakeWait4{exited: []int{500}} // 500 is an orphan
	s := &supervisor{log: klogtest.New(t), wait4: fake.wait4, children: map[int]*child{}}
	tracerDone := make(chan unix.WaitStatus, 1)
	s.children[100] = &child{done: tracerDone, traces: true}
	s.tracers = 1

	s.reap()
	if slices.Contains(fake.waited, -1) {
		t.Errorf("reap() with a tracer running waited for any child (pids %v), want only known children", fake.waited)
	}
	if s.orphans != 0 {
		t.Errorf("reap() with a tracer running reaped %d orphans, want 0", s.orphans)
	}

	// The tracer exits: its status is delivered and the orphan is reaped.
	fake.exited = append(fake.exited, 100)
	fake.waited = nil
	s.reap()
	select {
	case <-tracerDone:
	default:
		t.Errorf("reap() after the tracer exited did not deliver its status")
	}
	if s.tracers != 0 || s.orphans != 1 {
		t.Errorf("after the tracer exited: tracers = %d, orphans = %d, want 0, 1", s.tracers, s.orphans)
	}
}
