package tests

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// TestCLI runs the operator's commands in one guest: ksu check names an
// object that blocks a tree, ksu update --dry-run leaves the workload
// running, and after a real update ksu status lists the preserved pid.
func TestCLI(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)

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

	t.Run("check rejects namespace", func(t *testing.T) { testCheckRejects(t, ctx, g) })
	t.Run("check accepts workload", func(t *testing.T) { testCheckAccepts(t, ctx, g, im, clock) })
	t.Run("dry run", func(t *testing.T) { testDryRun(t, ctx, g, im, clock) })
	if t.Failed() {
		return
	}
	testStatusAfterUpdate(t, ctx, g, im, clock)
}

// testCheckRejects checks a process in its own UTS namespace, which the
// dump rejects: ksu check must exit 1 and name the namespace.
func testCheckRejects(t *testing.T, ctx context.Context, g *qemu.Guest) {
	p, err := g.Spawn(ctx, "unshare", "--uts", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Run(ctx, "kill", strconv.Itoa(p.PID))
	if err := waitComm(ctx, g, p.PID, "sleep"); err != nil {
		t.Fatal(err)
	}

	rep, res, err := scenario.Check(ctx, g, "--pid", strconv.Itoa(p.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --json --pid %d:\n%s", p.PID, res.Stdout)
	if res.ExitCode != 1 {
		t.Errorf("ksu check --pid %d exit status = %d, want 1", p.PID, res.ExitCode)
	}
	if rep.Proceed {
		t.Errorf("ksu check --pid %d proceed = true, want false", p.PID)
	}
	if len(rep.Trees) != 1 {
		t.Fatalf("ksu check --pid %d lists %d trees, want 1", p.PID, len(rep.Trees))
	}
	found := false
	for _, b := range rep.Trees[0].Blockers {
		found = found || (b.PID == p.PID && b.Kind == "namespace" && b.Object == "namespace uts" && b.Hint != "")
	}
	if !found {
		t.Errorf("ksu check --pid %d blockers = %+v, want namespace uts of process %d with a hint",
			p.PID, rep.Trees[0].Blockers, p.PID)
	}

	text, err := scenario.RunKSU(ctx, g, time.Minute, "check", "--pid", strconv.Itoa(p.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --pid %d:\n%s", p.PID, text.Stdout)
	if want := fmt.Sprintf("process %d: namespace uts (namespace)", p.PID); !strings.Contains(text.Stdout, want) {
		t.Errorf("ksu check output = %q, want it to contain %q", text.Stdout, want)
	}
}

// testCheckAccepts checks the clock workload against the newest kernel.
func testCheckAccepts(t *testing.T, ctx context.Context, g *qemu.Guest, im scenario.Images, clock scenario.Preserved) {
	rep, res, err := scenario.Check(ctx, g, "--latest", "--pid", strconv.Itoa(clock.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --json --latest --pid %d:\n%s", clock.PID, res.Stdout)
	if res.ExitCode != 0 || !rep.Proceed {
		t.Errorf("ksu check --latest --pid %d = exit %d, proceed %v, want 0 and true; stderr %q",
			clock.PID, res.ExitCode, rep.Proceed, res.Stderr)
	}
	if rep.Kernel == nil || rep.Kernel.Release != im.NewRelease {
		t.Errorf("ksu check --latest kernel = %+v, want release %s", rep.Kernel, im.NewRelease)
	}
	if len(rep.Trees) != 1 || rep.Trees[0].RSSBytes == 0 {
		t.Errorf("ksu check --latest trees = %+v, want one tree with its resident memory", rep.Trees)
	}
	if rep.Memory == nil || rep.Memory.AvailableBytes == 0 {
		t.Errorf("ksu check --latest memory = %+v, want MemAvailable", rep.Memory)
	}
}

// testDryRun runs ksu update --dry-run on the clock workload: it must
// exit 0, print the pause, unload the kernel and leave the clock running.
func testDryRun(t *testing.T, ctx context.Context, g *qemu.Guest, im scenario.Images, clock scenario.Preserved) {
	res, err := scenario.RunKSU(ctx, g, 5*time.Minute, "update", "--latest", "--dry-run", "--pid", strconv.Itoa(clock.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu update --dry-run: exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	if res.ExitCode != 0 {
		t.Fatalf("ksu update --dry-run exit status = %d, want 0", res.ExitCode)
	}
	if !strings.Contains(res.Stdout, "dry run: the processes would have been paused about") {
		t.Errorf("ksu update --dry-run output = %q, want the pause it would have taken", res.Stdout)
	}
	if !strings.Contains(res.Stderr, "snapshot decodes") {
		t.Errorf("ksu update --dry-run log = %q, want the snapshot check", res.Stderr)
	}

	loaded, err := scenario.KexecLoaded(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if loaded {
		t.Errorf("kexec_loaded after the dry run = 1, want 0")
	}
	if release, err := scenario.Uname(ctx, g); err != nil || release != im.OldRelease {
		t.Errorf("guest release after the dry run = %q, %v, want %s", release, err, im.OldRelease)
	}

	if err := clock.Alive(ctx, g, "/usr/local/bin/ksu-clock"); err != nil {
		t.Fatalf("after the dry run: %v", err)
	}
	if err := waitClockSample(ctx, g, clock); err != nil {
		t.Errorf("after the dry run: %v", err)
	}
}

// testStatusAfterUpdate switches to the new kernel with the clock
// preserved, then checks ksu status --json and the clock's verdict.
func testStatusAfterUpdate(t *testing.T, ctx context.Context, g *qemu.Guest, im scenario.Images, clock scenario.Preserved) {
	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--pid", strconv.Itoa(clock.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())

	st, err := scenario.Status(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu status --json: %+v", st)
	if !slices.Contains(st.Report.Restored, int32(clock.PID)) {
		t.Errorf("ksu status restored = %v, want it to contain %d; failures %+v",
			st.Report.Restored, clock.PID, st.Report.Failures)
	}
	if st.Report.Kernel != im.NewRelease || st.Report.SnapshotKernel != im.OldRelease {
		t.Errorf("ksu status kernels = %s from %s, want %s from %s",
			st.Report.Kernel, st.Report.SnapshotKernel, im.NewRelease, im.OldRelease)
	}
	if !strings.HasPrefix(st.Saved, "/var/log/ksu/report-") {
		t.Errorf("ksu status saved = %q, want a copy under /var/log/ksu", st.Saved)
	}
	if _, err := g.Output(ctx, "test", "-s", st.Saved); err != nil {
		t.Errorf("saved report %s: %v", st.Saved, err)
	}
	text, err := scenario.RunKSU(ctx, g, time.Minute, "status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu status:\n%s", text.Stdout)
	if want := "restored: 1 process [" + strconv.Itoa(clock.PID) + "]"; !strings.Contains(text.Stdout, want) {
		t.Errorf("ksu status output = %q, want it to contain %q", text.Stdout, want)
	}

	verdict, err := clock.Check(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if verdict != "PASS" {
		t.Errorf("clock %d after the dry run and the update: verdict %q, want PASS", clock.PID, verdict)
	}
}

// waitComm waits, at most 10 seconds, until process pid runs comm.
func waitComm(ctx context.Context, g *qemu.Guest, pid int, comm string) error {
	path := fmt.Sprintf("/proc/%d/comm", pid)
	for range 50 {
		if out, err := g.Output(ctx, "cat", path); err == nil && strings.TrimSpace(string(out)) == comm {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("process %d does not run %s after 10s", pid, comm)
}

// waitClockSample waits, at most 10 seconds, for a clock sample later
// than the last one logged so far.
func waitClockSample(ctx context.Context, g *qemu.Guest, clock scenario.Preserved) error {
	before, err := g.Output(ctx, "cat", clock.Log)
	if err != nil {
		return err
	}
	mono, _, err := scenario.LastClock(string(before))
	if err != nil {
		return err
	}
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		out, err := g.Output(ctx, "cat", clock.Log)
		if err != nil {
			return err
		}
		if next, _, err := scenario.LastClock(string(out)); err == nil && next > mono {
			return nil
		}
	}
	return fmt.Errorf("clock %d logged no sample after %v in 10s", clock.PID, time.Duration(mono))
}
