package tests

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// crossWorkloads are the workloads preserved across a switch to another
// release, besides the clock sampler: every one of tests/workloads but
// tcp and unixsock. Those keep connections in their listeners' accept
// queues, which ksu update rejects: only a dump that kills the processes
// may take them.
var crossWorkloads = []string{
	"events", "files", "gothreads", "identity", "memory", "pipeline", "pipes",
	"proctree", "signals", "threads", "timers", "tmpfs", "udp",
}

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
	installCrossPrograms(t, ctx, g)
	group := startCrossGroup(t, ctx, g, "", crossWorkloads, to)
	switchPreserving(t, ctx, g, from, to, group)
	checkTmpfsRestored(t, ctx, g, group)
	group.check(t, ctx, g)
}

// Guest paths of the clock sampler and the vDSO caller.
const (
	clockPath = "/usr/local/bin/ksu-clock"
	callPath  = "/usr/local/bin/ksu-vdsocall"
)

// crossGroup is a clock sampler, a vDSO caller and workloads started
// together in a guest, preserved across one or more switches, then
// checked together.
type crossGroup struct {
	clock scenario.Preserved
	all   []scenario.Preserved // the sampler and the vDSO caller first
	argv0 map[int]string       // command each process must still run, by PID
	xfail map[int]string       // why a workload is expected to fail, by PID
}

// installCrossPrograms compiles the clock sampler and the vDSO caller and
// copies them into the guest.
func installCrossPrograms(t *testing.T, ctx context.Context, g *qemu.Guest) {
	t.Helper()
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	if err := scenario.InstallProgram(ctx, g, t.TempDir(), callPath, scenario.VDSOCallSource); err != nil {
		t.Fatal(err)
	}
}

// startCrossGroup starts a group whose scratch directories end in
// suffix, with the workloads names. A workload is expected to fail when
// its desc file marks it for any of releases, the kernels the group will
// be switched to.
func startCrossGroup(t *testing.T, ctx context.Context, g *qemu.Guest, suffix string, names []string, releases ...string) *crossGroup {
	t.Helper()
	clock, err := scenario.StartWorkload(ctx, g, "clock"+suffix, clockPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clock.WaitLog(ctx, g, time.Minute, "clock"); err != nil {
		t.Fatal(err)
	}
	call, err := scenario.StartWorkload(ctx, g, "vdsocall"+suffix, callPath)
	if err != nil {
		t.Fatal(err)
	}
	found, err := call.WaitLog(ctx, g, time.Minute, "vdso ")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := scenario.Uname(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("functions of the %s vDSO: %s", rel, found)

	c := &crossGroup{
		clock: clock,
		all:   []scenario.Preserved{clock, call},
		argv0: map[int]string{clock.PID: clockPath, call.PID: callPath},
		xfail: map[int]string{},
	}
	for _, name := range names {
		bin := path.Join(scenario.WorkloadDir, name)
		w, err := scenario.StartWorkload(ctx, g, name+suffix, bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, rel := range releases {
			reason, err := scenario.GuestXfail(ctx, g, name, rel, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if c.xfail[w.PID] == "" {
				c.xfail[w.PID] = reason
			}
		}
		c.argv0[w.PID] = bin
		c.all = append(c.all, w)
	}
	return c
}

// clockMark is what a group's clock sampler had logged before a switch.
type clockMark struct {
	mono, boot int64 // the last sample, in nanoseconds
	logSize    int   // bytes of its log
}

// markClock reads the last sample of the group's clock sampler.
func (c *crossGroup) markClock(t *testing.T, ctx context.Context, g *qemu.Guest) clockMark {
	t.Helper()
	log, err := g.Output(ctx, "cat", c.clock.Log)
	if err != nil {
		t.Fatal(err)
	}
	mono, boot, err := scenario.LastClock(string(log))
	if err != nil {
		t.Fatal(err)
	}
	return clockMark{mono: mono, boot: boot, logSize: len(log)}
}

// switchPreserving updates the guest from release from to release to
// with every process of groups preserved, and logs the host's and the
// guest's phase times and the pause. It checks the restore report, and
// that every process runs with its PID and command. It also checks that
// each group's clocks continued: never back, and no step forward longer
// than the whole switch as the host measured it plus 1 s, because the
// new kernel reads the pause from an RTC that counts whole seconds.
func switchPreserving(t *testing.T, ctx context.Context, g *qemu.Guest, from, to string, groups ...*crossGroup) {
	t.Helper()
	var args []string
	marks := make([]clockMark, len(groups))
	for i, c := range groups {
		for _, w := range c.all {
			args = append(args, "--pid", fmt.Sprint(w.PID))
		}
		marks[i] = c.markClock(t, ctx, g)
	}

	console := g.Mark()
	start := time.Now()
	s, err := scenario.UpdateKernel(ctx, g, to, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch %s -> %s took %v\n%s", from, to, time.Since(start).Round(time.Millisecond), s.Report())
	if s.To != to {
		t.Fatalf("guest runs %s after the update, want %s", s.To, to)
	}
	rep := readCrossReport(t, ctx, g, from)
	logVDSOPlan(t, g, console, from, to)
	for _, c := range groups {
		for _, w := range c.all {
			if !slices.Contains(rep.Restored, int32(w.PID)) {
				t.Errorf("report restored %v, want it to contain %d", rep.Restored, w.PID)
			}
			if err := w.Alive(ctx, g, c.argv0[w.PID]); err != nil {
				t.Errorf("after the update: %v", err)
			}
		}
	}
	for i, c := range groups {
		checkClockContinues(t, ctx, g, c.clock, marks[i].mono, marks[i].boot)
		checkClockSteps(t, ctx, g, c.clock, marks[i].logSize, s.Total)
	}
}

// readCrossReport reads and logs the restore report, and fails the test
// when a process was not restored or the snapshot is not of release
// from.
func readCrossReport(t *testing.T, ctx context.Context, g *qemu.Guest, from string) scenario.Report {
	t.Helper()
	rep, err := scenario.ReadReport(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: kernel %s, snapshot kernel %s, restored %v, failures %v, pause %v",
		rep.Kernel, rep.SnapshotKernel, rep.Restored, rep.Failures, time.Duration(rep.Pause).Round(time.Millisecond))
	if rep.Clocks != nil {
		t.Logf("  time namespace offsets: monotonic %v, boottime %v",
			time.Duration(rep.Clocks.Monotonic), time.Duration(rep.Clocks.Boottime))
	}
	for _, p := range rep.Phases {
		t.Logf("  new kernel phase %-10s %8v", p.Phase, p.Duration.Round(time.Millisecond))
	}
	if len(rep.Failures) > 0 {
		logRestorer(t, g)
		t.Fatalf("restore failures: %+v", rep.Failures)
	}
	if rep.SnapshotKernel != from {
		t.Errorf("report snapshot kernel %q, want %q", rep.SnapshotKernel, from)
	}
	return rep
}

// checkClockSteps checks the lines the clock sampler logged after its
// first logSize bytes: no clock went back, and no step forward was
// longer than switchTook plus 1 s.
func checkClockSteps(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved, logSize int, switchTook time.Duration) {
	t.Helper()
	log, err := g.Output(ctx, "cat", clock.Log)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) < logSize {
		t.Fatalf("clock log %s shrank from %d to %d bytes", clock.Log, logSize, len(log))
	}
	mono, boot, back, err := scenario.ClockSteps(string(log[logSize:]))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("process %d: largest clock step over the switch: monotonic %v, boottime %v (switch took %v)",
		clock.PID, mono.Round(time.Millisecond), boot.Round(time.Millisecond), switchTook.Round(time.Millisecond))
	if back != "" {
		t.Errorf("process %d: a clock went back during the switch: %q", clock.PID, back)
	}
	limit := switchTook + time.Second
	if mono > limit {
		t.Errorf("process %d: CLOCK_MONOTONIC stepped %v, want at most %v", clock.PID, mono, limit)
	}
	if boot > limit {
		t.Errorf("process %d: CLOCK_BOOTTIME stepped %v, want at most %v", clock.PID, boot, limit)
	}
}

// xfailVerdictWait bounds the wait for the verdict of a workload marked
// to fail: a failure often leaves it blocked with no verdict at all.
const xfailVerdictWait = 20 * time.Second

// check sends SIGUSR2 to every process of the group, then checks each
// verdict: PASS, or FAIL or no verdict at all when its desc file marks it
// to fail. All processes check themselves at once, so a workload blocked
// by a known failure delays the others' verdicts by nothing. Each process
// exits after its verdict.
func (c *crossGroup) check(t *testing.T, ctx context.Context, g *qemu.Guest) {
	t.Helper()
	var asked []scenario.Preserved
	for _, w := range c.all {
		if err := w.RequestCheck(ctx, g); err != nil {
			t.Errorf("check %s: %v", w.Dir, err)
			continue
		}
		asked = append(asked, w)
	}
	for _, w := range asked {
		xfail := c.xfail[w.PID]
		wait := time.Minute
		if xfail != "" {
			wait = xfailVerdictWait
		}
		verdict, err := w.Verdict(ctx, g, wait)
		judgeVerdict(t, w, verdict, err, xfail)
	}
}

// judgeVerdict checks the verdict of workload w, or the error of waiting
// for it, against xfail, why its desc file marks it to fail ("" when it
// should pass).
func judgeVerdict(t *testing.T, w scenario.Preserved, verdict string, err error, xfail string) {
	t.Helper()
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

// logVDSOPlan logs the restorer's vDSO lines on the console from cursor
// from on, and fails the test when the restorer did not log its plan
// for a switch from release fromRel to toRel.
func logVDSOPlan(t *testing.T, g *qemu.Guest, from qemu.Cursor, fromRel, toRel string) {
	t.Helper()
	plan := fmt.Sprintf("snapshot of kernel %s on kernel %s: ", fromRel, toRel)
	found := false
	for _, l := range g.Console(from) {
		if strings.Contains(l.Text, plan) || strings.Contains(l.Text, "vDSO copy") {
			t.Logf("console: %s", strings.TrimSpace(l.Text))
		}
		found = found || strings.Contains(l.Text, plan)
	}
	if !found {
		t.Errorf("console has no line %q", plan)
	}
}
