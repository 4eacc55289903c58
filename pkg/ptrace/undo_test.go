package ptrace

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

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
// KSU_TEST_TRACEE and sends it SIGSTOP, unless KSU_TEST_STOPPED=true
// marks a process that a signal stopped already. Then it injects getpid
// into thread KSU_TEST_TID with a printJournal, patching the code at rip
// if KSU_TEST_PATCH=true. The test pauses the call at a failpoint
// (KSU_FAILPOINT), kills the helper there and then acts as the watchdog.
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
	stopped := os.Getenv("KSU_TEST_STOPPED") == "true"
	if stopped {
		// Collect the seize traps first, as helperDeathTracer does.
		err = t.do(func() error {
			for _, th := range t.threads {
				if _, err := t.waitStop(th); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := t.InterruptProcess(pid); err != nil {
		return err
	}

	if !stopped {
		// As the dump does: the SIGSTOP stays pending until the first
		// injected call dequeues it and starts a group-stop.
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			return err
		}
	}
	if _, err := t.Syscall(tid, unix.SYS_GETPID); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// TestIntegrationUndoAfterTracerDeath kills a tracer at each failpoint of
// an injected call, on the vDSO and the patching path, while a SIGSTOP
// holds the tracee. Undo with the journal's last outstanding Injection
// must let the tracee, a Go process, compute the right result. Without
// Undo the same tracee fails, so the test can fail.
func TestIntegrationUndoAfterTracerDeath(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	type undoCase struct {
		point   string
		patch   bool
		stopped bool // stopped by a signal before the tracer came
		undo    bool
	}
	var cases []undoCase
	for _, point := range []string{PointBorrowed, PointEnter, PointExit} {
		for _, patch := range []bool{false, true} {
			for _, stopped := range []bool{false, true} {
				cases = append(cases, undoCase{point, patch, stopped, true})
			}
		}
	}
	cases = append(cases, undoCase{PointExit, false, false, false}, undoCase{PointExit, true, false, false})
	for _, c := range cases {
		name := fmt.Sprintf("%s/patch=%t/stopped=%t/undo=%t", c.point, c.patch, c.stopped, c.undo)
		t.Run(name, func(t *testing.T) {
			got := undoOutcome(t, c.point, c.patch, c.stopped, c.undo)
			t.Logf("tracee outcome: %q", got)
			if survived := got == suffixSurvives; survived != c.undo {
				t.Errorf("tracee after its tracer died at %s and %s = %q, want survival %t",
					c.point, map[bool]string{true: "Undo", false: "no Undo"}[c.undo], got, c.undo)
			}
		})
	}
}

// undoOutcome starts a compute helper, kills an undotracer paused at
// failpoint point, calls Undo if undo is true, continues the helper and
// returns computeOutcome.
func undoOutcome(t *testing.T, point string, patch, stopped, undo bool) string {
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
	if stopped {
		stopProcess(t, pid)
	}

	tracer := startHelper(t, "undotracer", "KSU_TEST_TRACEE="+strconv.Itoa(pid),
		"KSU_TEST_TID="+strconv.Itoa(tid), "KSU_TEST_PATCH="+strconv.FormatBool(patch),
		"KSU_TEST_STOPPED="+strconv.FormatBool(stopped), failpoint.EnvVar+"="+point+":pause")
	inj := outstandingInjection(t, tracer)
	if err := tracer.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = tracer.cmd.Wait()

	if fate, dead := exitFate(tracee, &stderr); dead {
		return fate
	}
	if undo {
		if err := Undo(inj); err != nil {
			t.Fatalf("Undo(%+v) = %v", inj, err)
		}
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	return computeOutcome(tracee, &stderr)
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
