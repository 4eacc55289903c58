package tests

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// TestCLI runs the operator's commands in one guest: ksu check names an
// object that blocks a tree and the journald stream behind a service's
// stdout, ksu update --dry-run leaves the workload
// running, --unit and --all select a systemd service, and after a real
// update ksu status lists the preserved pid, matches what the console
// showed, and the journal has the report once.
func TestCLI(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	bootDevkmsg := readDevkmsg(t, ctx, g)

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
	t.Run("check names journald peer", func(t *testing.T) { testCheckJournal(t, ctx, g) })
	t.Run("check accepts workload", func(t *testing.T) { testCheckAccepts(t, ctx, g, im, clock) })
	t.Run("dry run", func(t *testing.T) { testDryRun(t, ctx, g, im, clock) })
	t.Run("select unit and all", func(t *testing.T) { testSelectUnit(t, ctx, g) })
	if t.Failed() {
		return
	}
	testStatusAfterUpdate(t, ctx, g, im, clock, bootDevkmsg)
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

// testCheckJournal starts a transient service with systemd's default
// output, a stream to journald: ksu check must reject it and name
// journald's stdout stream and its holder in fd 1's blocker, with the
// hint to change StandardOutput=.
func testCheckJournal(t *testing.T, ctx context.Context, g *qemu.Guest) {
	const unit = "ksu-journal-svc"
	res, err := g.Run(ctx, "systemd-run", "--unit="+unit, "sleep", "600")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("systemd-run --unit=%s = exit %d, %v; stderr %q", unit, res.ExitCode, err, res.Stderr)
	}
	defer g.Run(ctx, "systemctl", "stop", unit)
	out, err := g.Output(ctx, "systemctl", "show", "-p", "MainPID", "--value", unit)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if err := waitComm(ctx, g, pid, "sleep"); err != nil {
		t.Fatal(err)
	}

	rep, checkRes, err := scenario.Check(ctx, g, "--unit", unit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --json --unit %s:\n%s", unit, checkRes.Stdout)
	if checkRes.ExitCode != 1 || rep.Proceed {
		t.Errorf("ksu check --unit %s = exit %d, proceed %v, want 1 and false", unit, checkRes.ExitCode, rep.Proceed)
	}
	if len(rep.Trees) != 1 {
		t.Fatalf("ksu check --unit %s lists %d trees, want 1", unit, len(rep.Trees))
	}
	found := false
	for _, b := range rep.Trees[0].Blockers {
		found = found || b.PID == pid && b.Object == "fd 1" &&
			strings.Contains(b.Reason, "journald's stdout stream (/run/systemd/journal/stdout)") &&
			strings.Contains(b.Reason, "(systemd-journal) as fd") && strings.Contains(b.Hint, "StandardOutput=")
	}
	if !found {
		t.Errorf("ksu check --unit %s blockers = %+v, want fd 1 of process %d naming journald's stdout stream, "+
			"its holder and the StandardOutput= hint", unit, rep.Trees[0].Blockers, pid)
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
	devkmsg := readDevkmsg(t, ctx, g)
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
	checkDevkmsg(t, ctx, g, "after the dry run", devkmsg)
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
func testStatusAfterUpdate(t *testing.T, ctx context.Context, g *qemu.Guest, im scenario.Images,
	clock scenario.Preserved, bootDevkmsg string) {
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
	compareStatus(t, s, st)
	checkJournal(t, ctx, g, clock)
	// A plain boot and a boot after an update run the same ksu-init and
	// userspace, so the setting after both must match.
	checkDevkmsg(t, ctx, g, "after the update", bootDevkmsg)
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

// compareStatus compares the phases and the pause of ksu status --json
// with the KSU-PHASE markers and the time that the test saw on the
// console: each phase of the report must have printed a marker with the
// same duration in milliseconds, and the pause must fit in the switch.
//
// N.B. the report's restore phase is the restorer's own time, while the
// console's restore marker times ksu-init's whole restore stage, which
// also waits for the restorer to start and to exit. So for restore the
// report must be at most the marker.
func compareStatus(t *testing.T, s scenario.Switch, st scenario.StatusReport) {
	t.Helper()
	if len(st.Report.Phases) == 0 {
		t.Errorf("ksu status phases are empty, want ksu-init's phases")
	}
	for _, span := range st.Report.Phases {
		ms := span.Duration.Milliseconds()
		found := slices.ContainsFunc(s.Phases, func(seen phase.Span) bool {
			if span.Phase == phase.Restore {
				return seen.Phase == span.Phase && ms <= seen.Duration.Milliseconds()
			}
			return seen.Phase == span.Phase && ms == seen.Duration.Milliseconds()
		})
		if !found {
			t.Errorf("ksu status phase %s took %v, but the console has no marker that matches %q; markers seen: %v",
				span.Phase, span.Duration, span.Marker(), s.Phases)
		}
	}
	// The pause is read from CLOCK_REALTIME on both kernels. The new
	// kernel starts that clock from the RTC, whose resolution is one
	// second, so the pause may exceed the test's own measure by that.
	pause := time.Duration(st.Report.Pause)
	if pause <= 0 || pause > s.Total+time.Second {
		t.Errorf("ksu status pause = %v, want more than 0 and at most the switch's %v plus 1s", pause, s.Total)
	}
}

// checkJournal checks that ksu-record.service, which ksu-init installs,
// logged the report's summary to the journal under the identifier ksu.
func checkJournal(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved) {
	t.Helper()
	want := "restored: 1 process [" + strconv.Itoa(clock.PID) + "]"
	out, err := scenario.WaitJournal(ctx, g, "ksu", want, time.Minute)
	t.Logf("journalctl -t ksu:\n%s", out)
	if err != nil {
		t.Error(err)
		return
	}
	if n := strings.Count(out, want); n != 1 {
		t.Errorf("journalctl -t ksu has the summary %d times, want once after ksu status ran too", n)
	}
}

// readDevkmsg returns the guest's printk_devkmsg: the kernel's rate limit
// on /dev/kmsg, which ksu update and ksu-init lift while they log.
func readDevkmsg(t *testing.T, ctx context.Context, g *qemu.Guest) string {
	t.Helper()
	out, err := g.Output(ctx, "cat", "/proc/sys/kernel/printk_devkmsg")
	if err != nil {
		t.Fatalf("read printk_devkmsg: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// checkDevkmsg checks that printk_devkmsg is back to want.
func checkDevkmsg(t *testing.T, ctx context.Context, g *qemu.Guest, when, want string) {
	t.Helper()
	if got := readDevkmsg(t, ctx, g); got != want {
		t.Errorf("printk_devkmsg %s = %q, want %q as before", when, got, want)
	}
}

// demoUnit is the transient service that testSelectUnit starts.
const demoUnit = "ksu-demo-svc"

// testSelectUnit starts a transient service of two processes, a shell
// and its sleep, and selects it with --unit and --all. ksu check must
// name both processes as one preservable tree, and --all must list it
// and leave out init and systemd's daemons with reasons. A dry run with
// --unit must leave the service running. The service writes to
// /dev/null, so none of its descriptors leads to journald.
func testSelectUnit(t *testing.T, ctx context.Context, g *qemu.Guest) {
	res, err := g.Run(ctx, "systemd-run", "--unit="+demoUnit, "-p", "StandardOutput=null", "-p", "StandardError=null",
		"/bin/sh", "-c", "sleep 600 & wait")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("systemd-run --unit=%s = exit %d, %v; stderr %q", demoUnit, res.ExitCode, err, res.Stderr)
	}
	defer g.Run(ctx, "systemctl", "stop", demoUnit)
	main, kid, err := waitUnitTree(ctx, g, demoUnit)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{main, kid}

	rep, checkRes, err := scenario.Check(ctx, g, "--unit", demoUnit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --json --unit %s:\n%s", demoUnit, checkRes.Stdout)
	if checkRes.ExitCode != 0 || !rep.Proceed {
		t.Errorf("ksu check --unit %s = exit %d, proceed %v, want 0 and true; stderr %q",
			demoUnit, checkRes.ExitCode, rep.Proceed, checkRes.Stderr)
	}
	if len(rep.Trees) != 1 || rep.Trees[0].Root != main || !slices.Equal(rep.Trees[0].PIDs, want) ||
		!rep.Trees[0].Preservable {
		t.Errorf("ksu check --unit %s trees = %+v, want one preservable tree of %v", demoUnit, rep.Trees, want)
	}

	testSelectAll(t, ctx, g, want)

	dryRes, err := scenario.RunKSU(ctx, g, 5*time.Minute, "update", "--latest", "--dry-run", "--verbose", "--unit", demoUnit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu update --dry-run --verbose --unit %s: exit %d\nstderr:\n%s", demoUnit, dryRes.ExitCode, dryRes.Stderr)
	if dryRes.ExitCode != 0 {
		t.Errorf("ksu update --dry-run --unit %s exit status = %d, want 0", demoUnit, dryRes.ExitCode)
	}
	for _, trace := range []string{"selection: unit " + demoUnit, "locks: holding /run/ksu/lock", "freeze: 2 processes"} {
		if !strings.Contains(dryRes.Stderr, trace) {
			t.Errorf("ksu update --dry-run --verbose stderr lacks %q", trace)
		}
	}
	if active, err := g.Output(ctx, "systemctl", "is-active", demoUnit); err != nil || strings.TrimSpace(string(active)) != "active" {
		t.Errorf("systemctl is-active %s after the dry run = %q, %v, want active", demoUnit, active, err)
	}
	if m, k, err := waitUnitTree(ctx, g, demoUnit); err != nil || m != main || k != kid {
		t.Errorf("%s after the dry run = processes %d and %d, %v, want %d and %d still running", demoUnit, m, k, err, main, kid)
	}
}

// testSelectAll runs ksu check --all: the tree of pids must be among its
// trees, and init and systemd-journald among what it leaves out.
func testSelectAll(t *testing.T, ctx context.Context, g *qemu.Guest, pids []int) {
	rep, res, err := scenario.Check(ctx, g, "--all")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --all --json: exit %d, %d trees, %d skipped", res.ExitCode, len(rep.Trees), len(rep.Skipped))
	for _, tree := range rep.Trees {
		t.Logf("  tree %v, preservable %v", tree.PIDs, tree.Preservable)
	}
	for _, s := range rep.Skipped {
		if !strings.Contains(s.Reason, "kernel thread") {
			t.Logf("  skipped process %d (%s): %s", s.PID, s.Comm, s.Reason)
		}
	}
	found := false
	for _, tree := range rep.Trees {
		found = found || slices.Equal(tree.PIDs, pids) && tree.Preservable
	}
	if !found {
		t.Errorf("ksu check --all trees = %+v, want a preservable tree of %v", rep.Trees, pids)
	}
	skippedInit, skippedJournald := false, false
	for _, s := range rep.Skipped {
		skippedInit = skippedInit || s.PID == 1 && strings.Contains(s.Reason, "init")
		skippedJournald = skippedJournald || s.Comm == "systemd-journal" && strings.Contains(s.Reason, "systemd's own daemons")
	}
	if !skippedInit || !skippedJournald {
		t.Errorf("ksu check --all skipped = %+v, want process 1 and systemd-journald with their reasons", rep.Skipped)
	}
}

// waitUnitTree waits, at most 10 seconds, until the main process of
// unit has a child, and returns both pids.
func waitUnitTree(ctx context.Context, g *qemu.Guest, unit string) (main, kid int, err error) {
	for range 50 {
		out, err := g.Output(ctx, "systemctl", "show", "-p", "MainPID", "--value", unit)
		if err == nil {
			main, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		}
		if main > 0 {
			path := fmt.Sprintf("/proc/%d/task/%d/children", main, main)
			if out, err := g.Output(ctx, "cat", path); err == nil && len(strings.Fields(string(out))) == 1 {
				kid, _ = strconv.Atoi(strings.Fields(string(out))[0])
				return main, kid, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("unit %s has no main process with one child after 10s (main %d)", unit, main)
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
