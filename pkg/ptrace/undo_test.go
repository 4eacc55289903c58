package ptrace

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/failpoint"
)

// printJournal prints every call it hears of to stdout, as "BORROW
// INJECTION" and "RETURN TID" lines.
type printJournal struct{}

func (printJournal) Borrow(inj Injection) error {
	text, err := inj.MarshalText()
	if err != nil {
		return err
	}
	_, err = fmt.Printf("BORROW %s\n", text)
	return err
}

func (printJournal) Return(tid int) error {
	_, err := fmt.Printf("RETURN %d\n", tid)
	return err
}

// helperUndoTracer seizes and interrupts every thread of process
// KSU_TEST_TRACEE and holds it in a group-stop (GroupStop), as the dump
// does. KSU_TEST_STOPPED=true marks a process that a signal stopped
// already. Then it injects getpid into thread KSU_TEST_TID with a
// printJournal, patching the code at rip if KSU_TEST_PATCH=true. The
// test pauses the call at a failpoint (KSU_FAILPOINT), kills the helper
// there and then acts as the watchdog.
func helperUndoTracer() error {
	pid, err := strconv.Atoi(os.Getenv("KSU_TEST_TRACEE"))
	if err != nil {
		return err
	}
	tid, err := strconv.Atoi(os.Getenv("KSU_TEST_TID"))
	if err != nil {
		return err
	}
	t := NewTracer(WithWaitTimeout(5*time.Second), WithJournal(printJournal{}))
	t.forcePatch = os.Getenv("KSU_TEST_PATCH") == "true"

	if _, err := t.SeizeProcess(pid, 0); err != nil {
		return err
	}
	if err := interruptSeized(t, pid, os.Getenv("KSU_TEST_STOPPED") == "true"); err != nil {
		return err
	}

	if err := t.GroupStop(pid); err != nil {
		return err
	}
	if _, err := t.Syscall(tid, unix.SYS_GETPID); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// TestIntegrationUndoAfterTracerDeath kills a tracer at each failpoint of
// an injected call, on the vDSO and the patching path, while a
// group-stop holds the tracee, sometimes with a SIGUSR1 sent to the
// thread meanwhile. Undo with the journal's last outstanding Injection
// must let the tracee, a Go process, compute the right result and take
// the signal. Without Undo the same tracee fails, so the test can fail.
func TestIntegrationUndoAfterTracerDeath(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	var cases []undoCase
	for _, point := range []string{PointBorrowed, PointEnter, PointExit} {
		for _, patch := range []bool{false, true} {
			for _, stopped := range []bool{false, true} {
				cases = append(cases, undoCase{point: point, patch: patch, stopped: stopped, undo: true})
			}
			cases = append(cases, undoCase{point: point, patch: patch, signal: true, undo: true})
		}
	}
	cases = append(cases, undoCase{point: PointExit}, undoCase{point: PointExit, patch: true})
	for _, c := range cases {
		name := fmt.Sprintf("%s/patch=%t/stopped=%t/signal=%t/undo=%t", c.point, c.patch, c.stopped, c.signal, c.undo)
		t.Run(name, func(t *testing.T) {
			got := undoOutcome(t, c)
			t.Logf("tracee outcome: %q", got)
			if survived := got == suffixSurvives; survived != c.undo {
				t.Errorf("tracee after its tracer died at %s and %s = %q, want survival %t",
					c.point, map[bool]string{true: "Undo", false: "no Undo"}[c.undo], got, c.undo)
			}
		})
	}
}

// undoCase is a case of TestIntegrationUndoAfterTracerDeath.
type undoCase struct {
	point   string // the failpoint where the tracer dies
	patch   bool   // the call patches the code at rip
	stopped bool   // a signal stopped the tracee before the tracer came
	signal  bool   // a SIGUSR1 reaches the thread during the call
	undo    bool   // the test calls Undo
}

// undoOutcome starts a compute helper, kills an undotracer paused at
// failpoint c.point, calls Undo if c.undo is true, continues the helper
// and returns computeOutcome.
func undoOutcome(t *testing.T, c undoCase) string {
	var stderr bytes.Buffer
	tracee := startHelperTo(t, "compute", &stderr)
	tid, err := strconv.Atoi(tracee.expect(t, "READY ", 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pid := tracee.cmd.Process.Pid
	if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil); err != nil {
		t.Fatal(err)
	}
	if c.stopped {
		stopProcess(t, pid)
	}

	tracer := startHelper(t, "undotracer", "KSU_TEST_TRACEE="+strconv.Itoa(pid),
		"KSU_TEST_TID="+strconv.Itoa(tid), "KSU_TEST_PATCH="+strconv.FormatBool(c.patch),
		"KSU_TEST_STOPPED="+strconv.FormatBool(c.stopped), failpoint.EnvVar+"="+c.point+":pause")
	inj := outstandingInjection(t, tracer)
	usr1 := 0
	if c.signal {
		// A handled signal numbered below SIGSTOP: without a group-stop
		// in effect, the thread would take it with the borrowed
		// registers once the tracer is gone.
		if err := unix.Tgkill(pid, tid, unix.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		usr1 = 1
	}
	if err := tracer.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = tracer.cmd.Wait()

	if fate, dead := exitFate(tracee, &stderr); dead {
		return fate
	}
	if c.undo {
		if err := Undo(inj); err != nil {
			t.Fatalf("Undo(%+v) = %v", inj, err)
		}
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	return computeOutcome(tracee, &stderr, usr1)
}

// outstandingInjection reads the tracer's journal lines until a borrow
// has had no return for a second, and returns that borrow. The tracer
// then pauses at its failpoint.
func outstandingInjection(t *testing.T, tracer *helper) Injection {
	t.Helper()
	lines := make(chan string)
	go func() {
		defer close(lines)
		for tracer.lines.Scan() {
			lines <- tracer.lines.Text()
		}
	}()
	var inj Injection
	outstanding := false
	deadline := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("undotracer output ended before it paused")
			}
			if text, ok := strings.CutPrefix(line, "BORROW "); ok {
				if err := inj.UnmarshalText([]byte(text)); err != nil {
					t.Fatal(err)
				}
				outstanding = true
			} else if strings.HasPrefix(line, "RETURN ") {
				outstanding = false
			}
		case <-time.After(time.Second):
			if outstanding {
				return inj
			}
		case <-deadline:
			t.Fatal("undotracer paused at no injected call within 20s")
		}
	}
}

// recordJournal records the journal calls as "borrow TID" and "return
// TID".
type recordJournal struct{ events []string }

func (j *recordJournal) Borrow(inj Injection) error {
	j.events = append(j.events, fmt.Sprintf("borrow %d", inj.TID))
	return nil
}

func (j *recordJournal) Return(tid int) error {
	j.events = append(j.events, fmt.Sprintf("return %d", tid))
	return nil
}

// TestIntegrationJournalReturns checks that every borrow of a call is
// followed by its return, also for a call that fails at a failpoint
// after the thread has its registers back. A call must leave a thread
// that GroupStop holds in its group-stop, also after a SIGCONT.
func TestIntegrationJournalReturns(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "compute")
	j := &recordJournal{}
	tr := NewTracer(WithWaitTimeout(5*time.Second), WithJournal(j))
	t.Cleanup(func() { _ = tr.Close() })
	if _, err := tr.SeizeProcess(h.cmd.Process.Pid, 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.InterruptProcess(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.GroupStop(h.cmd.Process.Pid); err != nil {
		t.Fatalf("GroupStop(%d) = %v", h.cmd.Process.Pid, err)
	}

	if _, err := tr.Syscall(tid, unix.SYS_GETPID); err != nil {
		t.Fatalf("Syscall(%d, getpid) = %v", tid, err)
	}
	stop, err := tr.Interrupt(tid)
	if err != nil {
		t.Fatal(err)
	}
	if stop.Kind != StopGroup {
		t.Errorf("thread %d after a call: %v, want a group-stop", tid, stop)
	}

	// A SIGCONT from elsewhere ends the group-stop; the next call must
	// start a new one before it borrows anything.
	if err := unix.Kill(h.cmd.Process.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Syscall(tid, unix.SYS_GETPID); err != nil {
		t.Fatalf("Syscall(%d, getpid) after SIGCONT = %v", tid, err)
	}
	if stop, err = tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}
	if stop.Kind != StopGroup {
		t.Errorf("thread %d after SIGCONT and a call: %v, want a group-stop", tid, stop)
	}
	t.Setenv(failpoint.EnvVar, PointExit)
	if _, err := tr.Syscall(tid, unix.SYS_GETPID); err == nil {
		t.Errorf("Syscall(%d, getpid) at failpoint %s = nil, want an error", tid, PointExit)
	}
	call := []string{fmt.Sprintf("borrow %d", tid), fmt.Sprintf("return %d", tid)}
	want := slices.Concat(call, call, call)
	if diff := cmp.Diff(want, j.events); diff != "" {
		t.Errorf("journal calls mismatch (-want +got):\n%s", diff)
	}

	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(h.cmd.Process.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	checkComputeResult(t, h, 0)
}
