package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/restore"
	"github.com/ksu-project/ksu/tests/scenario"
)

// rollbackReport is the part of /run/ksu/report.json that a rollback
// fills in.
type rollbackReport struct {
	Kernel   string  `json:"kernel"`
	Restored []int32 `json:"restored"`
	Rollback *struct {
		FromKernel string `json:"from_kernel"`
		Reason     string `json:"reason"`
	} `json:"rollback"`
}

// TestIntegrationRollback preserves two clock processes as separate
// trees with ksu update --rollback-on-failure and makes the restore of
// the second fail on the new kernel. Because one tree failed, ksu-init
// must abandon both before they run and kexec back into the old kernel
// with the same snapshot. There both clocks run on with their PIDs and
// pass their self-checks, and the report names the rollback, the new
// kernel and the reason.
func TestIntegrationRollback(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	const clockPath = "/usr/local/bin/ksu-clock"
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	kept := startClock(t, ctx, g, "rollback-kept", clockPath)
	clock := startClock(t, ctx, g, "rollback-failed", clockPath)
	point := fmt.Sprint(restore.FailpointPrefix, clock.PID)

	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--rollback-on-failure",
		"--pid", strconv.Itoa(kept.PID), "--pid", strconv.Itoa(clock.PID), "--append", failpoint.EnvVar+"="+point)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())
	if s.To != im.OldRelease {
		t.Errorf("kernel after the update = %s, want the old kernel %s", s.To, im.OldRelease)
	}
	checkRollbackConsole(t, g.ConsoleLog(), im.NewRelease, point)

	out, err := g.Output(ctx, "cat", "/run/ksu/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep rollbackReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("decode the restore report %s: %v", out, err)
	}
	if rep.Kernel != im.OldRelease {
		t.Errorf("report kernel = %s, want %s", rep.Kernel, im.OldRelease)
	}
	sorted := cmpopts.SortSlices(func(a, b int32) bool { return a < b })
	if diff := gocmp.Diff([]int32{int32(kept.PID), int32(clock.PID)}, rep.Restored, sorted); diff != "" {
		t.Errorf("report restored mismatch (-want +got):\n%s", diff)
	}
	if rep.Rollback == nil {
		t.Fatalf("report has no rollback entry: %s", out)
	}
	if rep.Rollback.FromKernel != im.NewRelease {
		t.Errorf("report rollback from kernel = %s, want %s", rep.Rollback.FromKernel, im.NewRelease)
	}
	wantReason := fmt.Sprintf("restore process %d: injected failure at failpoint %q", clock.PID, point)
	if !strings.Contains(rep.Rollback.Reason, wantReason) {
		t.Errorf("report rollback reason %q, want it to contain %q", rep.Rollback.Reason, wantReason)
	}

	for _, c := range []scenario.Preserved{kept, clock} {
		if err := c.Alive(ctx, g, clockPath); err != nil {
			t.Errorf("after the rollback: %v", err)
		}
		checkClockAdvances(t, ctx, g, c)
		if verdict, err := c.Check(ctx, g); err != nil {
			t.Errorf("check process %d: %v", c.PID, err)
		} else if verdict != "PASS" {
			t.Errorf("process %d: verdict %q, want PASS", c.PID, verdict)
		}
	}
}

// checkRollbackConsole checks that the console shows the rollback from
// the new kernel, for the injected failure, and no crash.
func checkRollbackConsole(t *testing.T, path, newRelease, point string) {
	t.Helper()
	console, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("KSU-ROLLBACK from %s: ", newRelease)
	if _, line, ok := strings.Cut(string(console), want); ok {
		line, _, _ = strings.Cut(line, "\n")
		t.Logf("console: %s%s", want, line)
	} else {
		t.Errorf("console has no line containing %q; see %s", want, path)
	}
	if !strings.Contains(string(console), fmt.Sprintf("failpoint %q", point)) {
		t.Errorf("console does not name failpoint %s; see %s", point, path)
	}
	for _, bad := range []string{"panic:", "fatal error:", "KSU-FATAL", "Kernel panic"} {
		if strings.Contains(string(console), bad) {
			t.Errorf("console contains %q; see %s", bad, path)
		}
	}
}
