package harness

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Runner performs the steps of a cycle in one place: on the host, or in
// a guest through its agent. Every method acts only on processes that
// the Runner started or that a restore of them recreated.
type Runner interface {
	// Start starts the named workload in a fresh scratch directory and
	// waits for its READY line. It returns the workload's pid.
	Start(ctx context.Context, name string) (pid int, err error)
	// Capture captures the process tree rooted at pid.
	Capture(ctx context.Context, pid int) (Tree, error)
	// Dump runs "ksu dump --pid PID --out SNAPSHOT --kill". A non-nil
	// error means the dump failed; output holds what ksu printed.
	Dump(ctx context.Context, pid int) (output string, err error)
	// WaitGone waits until none of pids exists any more.
	WaitGone(ctx context.Context, pids []int) error
	// Restore runs "ksu restore SNAPSHOT" on the snapshot of the last Dump.
	Restore(ctx context.Context) (output string, err error)
	// Check sends the check signal to the workload at pid, now possibly a
	// restored process, and returns whether it printed PASS and what it
	// printed after READY.
	Check(ctx context.Context, pid int) (pass bool, output string, err error)
	// Kill kills whichever of pids still exist.
	Kill(pids []int)
}

// Stage names the step of a cycle that failed.
type Stage string

// Stages of a cycle, in order.
const (
	StageStart   Stage = "start"
	StageDump    Stage = "dump"
	StageRestore Stage = "restore"
	StageState   Stage = "state" // the /proc captures differ
	StageCheck   Stage = "check"
)

// Result is the outcome of one cycle.
type Result struct {
	Name string
	// Failed is the stage that failed, or "" when the workload passed.
	Failed Stage
	// Detail is the failure: ksu's output, the workload's FAIL line, or
	// the /proc differences.
	Detail string
	// Took is the time from Start to the verdict.
	Took time.Duration
}

// Passed reports whether the cycle passed every stage.
func (r Result) Passed() bool { return r.Failed == "" }

// String returns the result as one table cell: "pass" or
// "fail(stage: first line of the detail)".
func (r Result) String() string {
	if r.Passed() {
		return "pass"
	}
	first, _, _ := strings.Cut(r.Detail, "\n")
	return fmt.Sprintf("fail(%s: %s)", r.Failed, first)
}

// Cycle starts the workload name, captures its tree, dumps and kills
// it, restores it, captures it again and checks it. When the dump fails,
// it checks the workload that the failed dump left running instead: the
// failure is still reported at the dump stage, and a FAIL verdict of the
// left-running workload is added to the detail. Cycle kills the tree
// before it returns.
func Cycle(ctx context.Context, r Runner, name string) Result {
	start := time.Now()
	res := cycle(ctx, r, name)
	res.Name = name
	res.Took = time.Since(start)
	return res
}

func cycle(ctx context.Context, r Runner, name string) Result {
	pid, err := r.Start(ctx, name)
	if err != nil {
		return Result{Failed: StageStart, Detail: err.Error()}
	}
	pids := []int{pid}
	defer func() { r.Kill(pids) }()

	before, err := r.Capture(ctx, pid)
	if err != nil {
		return Result{Failed: StageStart, Detail: fmt.Sprintf("capture before the dump: %v", err)}
	}
	pids = before.PIDs()
	if out, err := r.Dump(ctx, pid); err != nil {
		return Result{Failed: StageDump, Detail: dumpFailure(ctx, r, pid, out, err)}
	}
	if err := r.WaitGone(ctx, pids); err != nil {
		return Result{Failed: StageDump, Detail: err.Error()}
	}
	if out, err := r.Restore(ctx); err != nil {
		return Result{Failed: StageRestore, Detail: fmt.Sprintf("%v\n%s", err, strings.TrimSpace(out))}
	}
	after, diffs, err := captureSettled(ctx, r, pid, before)
	if err != nil {
		return Result{Failed: StageRestore, Detail: fmt.Sprintf("capture after the restore: %v", err)}
	}
	pids = mergePIDs(pids, after.PIDs())
	// Check even when the captures differ, so the detail shows both.
	pass, out, err := r.Check(ctx, pid)
	switch {
	case err != nil:
		return Result{Failed: StageCheck, Detail: fmt.Sprintf("%v\n%s", err, out)}
	case !pass:
		return Result{Failed: StageCheck, Detail: out + stateDetail(diffs)}
	case len(diffs) > 0:
		return Result{Failed: StageState, Detail: strings.Join(diffs, "\n")}
	}
	return Result{}
}

// Bounds of captureSettled: the number of captures after the restore,
// and the wait between two.
const (
	settleCaptures = 20
	settleWait     = 50 * time.Millisecond
)

// captureSettled captures the tree of pid after the restore and compares
// it with before, again while they differ, up to settleCaptures times.
// The restored threads first return from their blocking calls and
// enter them again, and some calls change what /proc shows while they
// wait: sigwaitinfo unblocks the signals it waits for. The differences
// left after the last capture are returned.
//
// Limitation: the captures are taken while the tree runs, so a timer
// that fires between them changes the pending-signal sets (the timers
// workload). Capturing both while the tree is frozen would lift it.
func captureSettled(ctx context.Context, r Runner, pid int, before Tree) (Tree, []string, error) {
	var after Tree
	var diffs []string
	for range settleCaptures {
		var err error
		after, err = r.Capture(ctx, pid)
		if err != nil {
			return after, nil, err
		}
		diffs = Compare(before, after)
		if len(diffs) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return after, diffs, nil
		case <-time.After(settleWait):
		}
	}
	return after, diffs, nil
}

// dumpFailure describes a failed dump and checks that the workload it
// left running still passes.
func dumpFailure(ctx context.Context, r Runner, pid int, out string, err error) string {
	detail := strings.TrimSpace(out)
	if detail == "" {
		detail = err.Error()
	}
	pass, checkOut, checkErr := r.Check(ctx, pid)
	switch {
	case checkErr != nil:
		detail += fmt.Sprintf("\nafter the failed dump the workload gave no verdict: %v", checkErr)
	case !pass:
		detail += "\nafter the failed dump the workload failed: " + checkOut
	}
	return detail
}

func stateDetail(diffs []string) string {
	if len(diffs) == 0 {
		return ""
	}
	return "\n/proc differences:\n" + strings.Join(diffs, "\n")
}

func mergePIDs(a, b []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, pid := range append(append([]int{}, a...), b...) {
		if !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	return out
}

// Verdict is how a result compares with the workload's xfail mark.
type Verdict string

// Verdicts.
const (
	Pass Verdict = "pass"
	// Xfail is an expected failure: the workload has an xfail reason.
	Xfail Verdict = "xfail"
	// Fail is a failure of a workload that has no xfail reason.
	Fail Verdict = "fail"
	// XPass is a pass of a workload marked xfail: the mark must go.
	XPass Verdict = "xpass"
)

// Judge returns the verdict for res given the workload's xfail reason
// (empty when it should pass).
func Judge(res Result, xfail string) Verdict {
	switch {
	case res.Passed() && xfail != "":
		return XPass
	case res.Passed():
		return Pass
	case xfail != "":
		return Xfail
	}
	return Fail
}

// Report judges res against the workload's xfail reason and reports it
// to t: an error for Fail and XPass, a log line otherwise. It returns
// the verdict.
func Report(t testing.TB, res Result, xfail string) Verdict {
	t.Helper()
	v := Judge(res, xfail)
	switch v {
	case Pass:
		t.Logf("%s: pass in %v", res.Name, res.Took.Round(time.Millisecond))
	case XPass:
		t.Errorf("%s: passes but is marked xfail (%q): remove xfail from %s.desc", res.Name, xfail, res.Name)
	case Xfail:
		t.Logf("%s: xfail (%s) in %v; failed at %s:\n%s", res.Name, xfail, res.Took.Round(time.Millisecond), res.Failed, res.Detail)
	case Fail:
		t.Errorf("%s: failed at %s in %v:\n%s", res.Name, res.Failed, res.Took.Round(time.Millisecond), res.Detail)
	}
	return v
}
