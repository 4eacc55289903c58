package tests

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// crossWorkloads are the workloads preserved across a switch to another
// release, besides the clock sampler.
var crossWorkloads = []string{"files", "signals", "pipes"}

// TestPreserveAcrossKernels switches the guest from the old release to
// the new one with a clock sampler and workloads preserved. The sampler
// calls clock_gettime through the vDSO in a loop, so it runs through the
// trampolines into the new kernel's vDSO; it must keep its PID and never
// see its clocks go back. A second program calls every vDSO function
// once, through the addresses it looked up on the old kernel.
func TestPreserveAcrossKernels(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	testPreserveAcross(t, ctx, g, im.OldRelease, im.NewRelease)
}

// TestPreserveAcrossKernelsBack switches from the new release back to the
// old one, whose vDSO lacks getrandom: the copy of the new vDSO makes
// the getrandom system call instead.
func TestPreserveAcrossKernelsBack(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.NewRelease)
	testPreserveAcross(t, ctx, g, im.NewRelease, im.OldRelease)
}

func testPreserveAcross(t *testing.T, ctx context.Context, g *qemu.Guest, from, to string) {
	const clockPath = "/usr/local/bin/ksu-clock"
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	clock, err := scenario.StartWorkload(ctx, g, "clock", clockPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clock.WaitLog(ctx, g, time.Minute, "clock"); err != nil {
		t.Fatal(err)
	}
	const callPath = "/usr/local/bin/ksu-vdsocall"
	if err := scenario.InstallProgram(ctx, g, t.TempDir(), callPath, scenario.VDSOCallSource); err != nil {
		t.Fatal(err)
	}
	call, err := scenario.StartWorkload(ctx, g, "vdsocall", callPath)
	if err != nil {
		t.Fatal(err)
	}
	found, err := call.WaitLog(ctx, g, time.Minute, "vdso ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("functions of the %s vDSO: %s", from, found)
	argv0 := map[int]string{clock.PID: clockPath, call.PID: callPath}
	all := []scenario.Preserved{clock, call}
	xfail := map[int]string{}
	for _, name := range crossWorkloads {
		bin := path.Join(scenario.WorkloadDir, name)
		w, err := scenario.StartWorkload(ctx, g, name, bin)
		if err != nil {
			t.Fatal(err)
		}
		if xfail[w.PID], err = scenario.GuestXfail(ctx, g, name, to, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		argv0[w.PID] = bin
		all = append(all, w)
	}
	before, err := g.Output(ctx, "cat", clock.Log)
	if err != nil {
		t.Fatal(err)
	}
	monoBefore, bootBefore, err := scenario.LastClock(string(before))
	if err != nil {
		t.Fatal(err)
	}

	var args []string
	for _, w := range all {
		args = append(args, "--pid", fmt.Sprint(w.PID))
	}
	start := time.Now()
	s, err := scenario.UpdateKernel(ctx, g, to, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch %s -> %s took %v\n%s", from, to, time.Since(start).Round(time.Millisecond), s.Report())
	if s.To != to {
		t.Fatalf("guest runs %s after the update, want %s", s.To, to)
	}
	rep, err := scenario.ReadReport(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: kernel %s, snapshot kernel %s, restored %v, failures %v, pause %v",
		rep.Kernel, rep.SnapshotKernel, rep.Restored, rep.Failures, time.Duration(rep.Pause).Round(time.Millisecond))
	for _, p := range rep.Phases {
		t.Logf("  new kernel phase %-10s %8v", p.Phase, p.Duration.Round(time.Millisecond))
	}
	logVDSOPlan(t, g, from, to)
	if len(rep.Failures) > 0 {
		logRestorer(t, g)
		t.Fatalf("restore failures: %+v", rep.Failures)
	}
	if rep.SnapshotKernel != from {
		t.Errorf("report snapshot kernel %q, want %q", rep.SnapshotKernel, from)
	}
	for _, w := range all {
		if !slices.Contains(rep.Restored, int32(w.PID)) {
			t.Errorf("report restored %v, want it to contain %d", rep.Restored, w.PID)
		}
		if err := w.Alive(ctx, g, argv0[w.PID]); err != nil {
			t.Errorf("after the update: %v", err)
		}
	}

	checkClockContinues(t, ctx, g, clock, monoBefore, bootBefore)
	for _, w := range all {
		checkVerdict(t, ctx, g, w, xfail[w.PID])
	}
}

// checkVerdict sends SIGUSR2 to workload w and checks its verdict: PASS,
// or FAIL or no verdict at all when its desc file marks it to fail.
func checkVerdict(t *testing.T, ctx context.Context, g *qemu.Guest, w scenario.Preserved, xfail string) {
	t.Helper()
	verdict, err := w.Check(ctx, g)
	if err != nil && xfail != "" {
		t.Logf("check %s: %v; expected: %s", w.Dir, err, xfail)
		return
	}
	if err != nil {
		t.Errorf("check %s: %v", w.Dir, err)
		return
	}
	switch {
	case verdict == "PASS" && xfail != "":
		t.Errorf("process %d in %s: PASS, but it is marked to fail (%s); remove the mark", w.PID, w.Dir, xfail)
	case verdict != "PASS" && xfail == "":
		t.Errorf("process %d in %s: verdict %q, want PASS", w.PID, w.Dir, verdict)
	case verdict != "PASS":
		t.Logf("process %d in %s: %q, expected: %s", w.PID, w.Dir, verdict, xfail)
	}
}

// logVDSOPlan logs the restorer's vDSO lines and fails the test when the
// restorer did not log its plan for a switch from release from to to.
func logVDSOPlan(t *testing.T, g *qemu.Guest, from, to string) {
	t.Helper()
	data, err := os.ReadFile(g.ConsoleLog())
	if err != nil {
		t.Errorf("read console log: %v", err)
		return
	}
	plan := fmt.Sprintf("snapshot of kernel %s on kernel %s: ", from, to)
	found := false
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, plan) || strings.Contains(l, "vDSO copy") {
			t.Logf("console: %s", strings.TrimSpace(l))
		}
		found = found || strings.Contains(l, plan)
	}
	if !found {
		t.Errorf("console has no line %q", plan)
	}
}
