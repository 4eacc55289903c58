package tests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/tests/scenario"
)

// chainWorkloads are the workloads of TestPreserveTwoUpdates, two groups
// of which go through the switches: a few kinds of state, and a shell
// pipeline with data in flight between its processes.
var chainWorkloads = []string{"files", "signals", "pipes", "pipeline"}

// TestPreserveTwoUpdates boots an earlier stable update of the old
// release, switches to the old release (a stable security update), then
// switches the same processes on to the new release. The processes the
// second switch preserves were restored by the first one: they already
// live in a time namespace and, when the first switch needed them, call
// the vDSO through trampolines.
//
// Workloads exit once checked, so two groups start on the first kernel.
// The first is checked after the first switch. The second goes through
// both switches and is checked after the second.
func TestPreserveTwoUpdates(t *testing.T) {
	im := findImages(t)
	stable := earlierStable(im)
	if stable == "" {
		t.Skipf("skipping: the images hold no other stable update of %s (EXTRA_KERNEL_PKGS in qemu/versions; ./build.sh setup builds it)",
			im.OldRelease)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, stable)
	installCrossPrograms(t, ctx, g)
	once := startCrossGroup(t, ctx, g, "-once", chainWorkloads, im.OldRelease)
	twice := startCrossGroup(t, ctx, g, "-twice", chainWorkloads, im.OldRelease, im.NewRelease)

	switchPreserving(t, ctx, g, stable, im.OldRelease, once, twice)
	once.check(t, ctx, g)

	switchPreserving(t, ctx, g, im.OldRelease, im.NewRelease, twice)
	twice.check(t, ctx, g)
}

// earlierStable returns an extra release of the images with the old
// release's upstream version and a lower ABI number (6.1.0-47 for
// 6.1.0-50), or "" when there is none.
func earlierStable(im scenario.Images) string {
	upstream, abi := splitRelease(im.OldRelease)
	for _, rel := range im.ExtraReleases {
		if u, a := splitRelease(rel); u == upstream && a < abi {
			return rel
		}
	}
	return ""
}

// splitRelease splits a Debian kernel release such as 6.1.0-47-cloud-amd64
// into its upstream version, 6.1.0, and its ABI number, 47 (-1 when
// there is none).
func splitRelease(rel string) (string, int) {
	upstream, rest, _ := strings.Cut(rel, "-")
	num, _, _ := strings.Cut(rest, "-")
	abi, err := strconv.Atoi(num)
	if err != nil {
		return upstream, -1
	}
	return upstream, abi
}

func TestSplitRelease(t *testing.T) {
	for _, tt := range []struct {
		rel      string
		upstream string
		abi      int
	}{
		{"6.1.0-47-cloud-amd64", "6.1.0", 47},
		{"6.12.117+deb12-cloud-amd64", "6.12.117+deb12", -1},
		{"6.1.0", "6.1.0", -1},
	} {
		upstream, abi := splitRelease(tt.rel)
		if upstream != tt.upstream || abi != tt.abi {
			t.Errorf("splitRelease(%q) = %q, %d, want %q, %d", tt.rel, upstream, abi, tt.upstream, tt.abi)
		}
	}
}

func TestClockSteps(t *testing.T) {
	for _, tt := range []struct {
		name      string
		log       string
		mono      time.Duration
		boot      time.Duration
		back      string
		wantError bool
	}{
		{name: "no lines", log: "READY\nclock 5 6\n"},
		{
			name: "largest step of each clock",
			log:  "clock 1 2\nstep 300000000 250000000\nstep 210000000 900000000\nclock 3 4\n",
			mono: 300 * time.Millisecond,
			boot: 900 * time.Millisecond,
		},
		{
			name: "first back line",
			log:  "step 300000000 300000000\nback 5 0\nback 7 7\n",
			mono: 300 * time.Millisecond,
			boot: 300 * time.Millisecond,
			back: "back 5 0",
		},
		{name: "bad number", log: "step 3x 4\n", wantError: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mono, boot, back, err := scenario.ClockSteps(tt.log)
			if (err != nil) != tt.wantError {
				t.Fatalf("ClockSteps(%q) error = %v, want error %v", tt.log, err, tt.wantError)
			}
			if tt.wantError {
				return
			}
			if mono != tt.mono || boot != tt.boot || back != tt.back {
				t.Errorf("ClockSteps(%q) = %v, %v, %q, want %v, %v, %q", tt.log, mono, boot, back, tt.mono, tt.boot, tt.back)
			}
		})
	}
}
