package tests

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// TestPreserveSameKernel switches the guest to the kernel it runs, with a
// clock sampler preserved: it must come back with its PID and pass its
// check, and the clocks must not go back. The workloads go through the
// switches between releases (preserve_cross_test.go).
func TestPreserveSameKernel(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	testPreserve(t, ctx, g, im.OldRelease)
}

func testPreserve(t *testing.T, ctx context.Context, g *qemu.Guest, to string) {
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
	before, err := g.Output(ctx, "cat", clock.Log)
	if err != nil {
		t.Fatal(err)
	}
	monoBefore, bootBefore, err := scenario.LastClock(string(before))
	if err != nil {
		t.Fatal(err)
	}

	s, err := scenario.UpdateKernel(ctx, g, to, "--pid", fmt.Sprint(clock.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())
	rep, err := scenario.ReadReport(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: restored %v, failures %v, pause %v, clocks %+v",
		rep.Restored, rep.Failures, time.Duration(rep.Pause).Round(time.Millisecond), rep.Clocks)
	for _, p := range rep.Phases {
		t.Logf("  new kernel phase %-10s %8v", p.Phase, p.Duration.Round(time.Millisecond))
	}
	if len(rep.Failures) > 0 {
		logRestorer(t, g)
		t.Fatalf("restore failures: %+v", rep.Failures)
	}
	for _, w := range []scenario.Preserved{clock} {
		if !slices.Contains(rep.Restored, int32(w.PID)) {
			t.Errorf("report restored %v, want it to contain %d", rep.Restored, w.PID)
		}
	}

	for _, tt := range []struct {
		w     scenario.Preserved
		argv0 string
	}{{clock, clockPath}} {
		if err := tt.w.Alive(ctx, g, tt.argv0); err != nil {
			t.Errorf("after the update: %v", err)
		}
	}
	checkClockContinues(t, ctx, g, clock, monoBefore, bootBefore)
	for _, w := range []scenario.Preserved{clock} {
		verdict, err := w.Check(ctx, g)
		if err != nil {
			t.Errorf("check %s: %v", w.Dir, err)
			continue
		}
		if verdict != "PASS" {
			t.Errorf("process %d in %s: verdict %q, want PASS", w.PID, w.Dir, verdict)
		}
	}
}

// checkClockContinues checks that the clock program's samples after the
// update are later than the ones before it.
func checkClockContinues(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved, mono, boot int64) {
	t.Helper()
	time.Sleep(3 * time.Second) // let the restored clock log a sample
	after, err := g.Output(ctx, "cat", clock.Log)
	if err != nil {
		t.Fatal(err)
	}
	monoAfter, bootAfter, err := scenario.LastClock(string(after))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clock samples: monotonic %v -> %v, boottime %v -> %v",
		time.Duration(mono), time.Duration(monoAfter), time.Duration(boot), time.Duration(bootAfter))
	if monoAfter < mono {
		t.Errorf("CLOCK_MONOTONIC after the update %v, want at least %v", time.Duration(monoAfter), time.Duration(mono))
	}
	if bootAfter < boot {
		t.Errorf("CLOCK_BOOTTIME after the update %v, want at least %v", time.Duration(bootAfter), time.Duration(boot))
	}
}

// logRestorer logs the console lines of the restorer, and of a Go panic,
// which the guest's report cannot hold.
func logRestorer(t *testing.T, g *qemu.Guest) {
	data, err := os.ReadFile(g.ConsoleLog())
	if err != nil {
		t.Logf("read console log: %v", err)
		return
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.Contains(l, "ksu-restorer") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			t.Logf("console: %s", strings.Join(lines[i:min(i+12, len(lines))], "\n"))
		}
	}
}
