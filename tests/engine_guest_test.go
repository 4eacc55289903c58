package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/tests/harness"
	"github.com/ksu-project/ksu/tests/scenario"
	"github.com/ksu-project/ksu/tests/workloads"
)

// guestCycleTimeout bounds one boot and all workload cycles on one kernel.
const guestCycleTimeout = 10 * time.Minute

// TestEngineInGuest boots one guest per kernel release of the images,
// old then new, and runs every workload through ksu dump --kill and ksu
// restore inside it, one after the other, with the same cycle and
// verdicts as the host test in tests/engine.
// xfailPatience bounds the wait for the verdict of a workload that is
// expected to fail: some hang rather than print FAIL.
const xfailPatience = 20 * time.Second

func TestEngineInGuest(t *testing.T) {
	im := findImages(t)
	tools := buildGuestTools(t)
	bins, err := workloads.List(tools.WorkloadsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{im.OldRelease, im.NewRelease} {
		t.Run(rel, func(t *testing.T) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), guestCycleTimeout)
			defer cancel()
			g := bootGuest(t, ctx, im, rel)
			if err := scenario.InstallTools(ctx, g, tools); err != nil {
				t.Fatal(err)
			}
			verdicts := map[string]string{}
			for _, b := range bins {
				t.Run(b.Name, func(t *testing.T) {
					if ok, err := b.Desc.SupportsKernel(rel); err != nil || !ok {
						t.Skipf("skipping: needs kernel %s or later", b.Desc.MinKernel)
					}
					xfail := b.Desc.XfailOn(rel)
					runner := &scenario.GuestRunner{G: g}
					if xfail != "" {
						runner.Patience = xfailPatience
					}
					res := harness.Cycle(ctx, runner, b.Name)
					v := harness.Report(t, res, xfail)
					verdicts[b.Name] = fmt.Sprintf("%-5s %6s  %s", v, res.Took.Round(100*time.Millisecond), res)
				})
			}
			var table strings.Builder
			for _, b := range bins {
				fmt.Fprintf(&table, "  %-10s %s\n", b.Name, verdicts[b.Name])
			}
			t.Logf("guest %s, %v in all (boot included):\n%s", rel, time.Since(start).Round(time.Second), table.String())
		})
	}
}

// buildGuestTools builds this tree's ksu, procstate and workloads for
// the guests.
func buildGuestTools(t *testing.T) scenario.HostTools {
	t.Helper()
	dir := t.TempDir()
	tools := scenario.HostTools{
		KSU:          filepath.Join(dir, "ksu"),
		ProcState:    filepath.Join(dir, "procstate"),
		WorkloadsDir: filepath.Join(dir, "workloads"),
	}
	for bin, pkg := range map[string]string{
		tools.KSU:       "github.com/ksu-project/ksu/cmd/ksu",
		tools.ProcState: "github.com/ksu-project/ksu/tests/harness/procstate",
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := workloads.Build(ctx, tools.WorkloadsDir)
	if errors.Is(err, workloads.ErrNoCompiler) {
		t.Skip("skipping: gcc not found; install gcc and libc6-dev")
	}
	if err != nil {
		t.Fatal(err)
	}
	return tools
}
