package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

func findImages(t *testing.T) scenario.Images {
	t.Helper()
	im, err := scenario.FindImages()
	if errors.Is(err, scenario.ErrNoImages) {
		t.Skip("skipping: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// bootGuest boots a guest on release rel for the duration of the test,
// with guestPorts forwarded from the host (see scenario.Boot).
func bootGuest(t *testing.T, ctx context.Context, im scenario.Images, rel string, guestPorts ...int) *qemu.Guest {
	t.Helper()
	g, boot, err := scenario.Boot(ctx, im, rel, t.TempDir(), guestPorts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest console: %s", g.ConsoleLog())
		}
		g.Close()
	})
	t.Logf("guest booted %s in %s (accel %s)", rel, boot.Round(time.Millisecond), g.Accel())
	return g
}

// TestKernelSwitch boots the old kernel, checks that ksu update rejects
// bad input without changing anything, then switches to the new kernel
// and checks that the real init runs on a writable root.
func TestKernelSwitch(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)

	t.Run("rejects bad input", func(t *testing.T) { testUpdateRejects(t, ctx, g) })

	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())

	if s.From != im.OldRelease || s.To != im.NewRelease {
		t.Errorf("switch went %s -> %s, want %s -> %s", s.From, s.To, im.OldRelease, im.NewRelease)
	}
	checkRealInit(t, ctx, g)
}

// testUpdateRejects runs ksu update with bad input in the guest: each run
// must fail with a message naming the problem, and the guest must stay
// on its kernel.
func testUpdateRejects(t *testing.T, ctx context.Context, g *qemu.Guest) {
	before, err := scenario.Uname(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		argv     []string
		wantCode int
		wantErr  string
	}{
		{"not a kernel", []string{"ksu", "update", "--kernel", "/etc/hostname", "--yes"}, 1, "not an x86-64 bzImage"},
		{"missing kernel", []string{"ksu", "update", "--kernel", "/boot/vmlinuz-none", "--yes"}, 1, "no such file"},
		{"no --yes off a terminal", []string{"ksu", "update", "--kernel", "/boot/vmlinuz-" + before}, 2, "pass --yes"},
		{"missing base", []string{"ksu", "update", "--kernel", "/boot/vmlinuz-" + before, "--base", "/nonexistent", "--yes"}, 1, "/nonexistent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := g.Run(ctx, tt.argv...)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("%s: exit %d, want %d; stderr: %s", strings.Join(tt.argv, " "), res.ExitCode, tt.wantCode, res.Stderr)
			}
			if !strings.Contains(string(res.Stderr), tt.wantErr) {
				t.Errorf("%s: stderr %q, want it to contain %q", strings.Join(tt.argv, " "), res.Stderr, tt.wantErr)
			}
		})
	}
	after, err := scenario.Uname(ctx, g)
	if err != nil || after != before {
		t.Errorf("after rejected updates the guest runs %q (%v), want %q", after, err, before)
	}
}

// checkRealInit checks that PID 1 is systemd, not ksu-init, and that the
// root filesystem is mounted read-write.
func checkRealInit(t *testing.T, ctx context.Context, g *qemu.Guest) {
	t.Helper()
	exe, err := g.Output(ctx, "readlink", "/proc/1/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(exe), "systemd") {
		t.Errorf("PID 1 runs %q, want systemd", strings.TrimSpace(string(exe)))
	}
	opts, err := g.Output(ctx, "findmnt", "-no", "OPTIONS", "/")
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(strings.TrimSpace(string(opts)), ","); first != "rw" {
		t.Errorf("root mount options %q, want rw first", strings.TrimSpace(string(opts)))
	}
	probe, err := g.Run(ctx, "touch", "/var/tmp/ksu-write-probe")
	if err != nil || probe.ExitCode != 0 {
		t.Errorf("writing to the root filesystem: exit %d, %v: %s", probe.ExitCode, err, probe.Stderr)
	}
}
