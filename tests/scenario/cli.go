package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ksu-project/ksu/qemu"
)

// KSUResult is the output and exit status of one ksu command in the guest.
type KSUResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// RunKSU runs /usr/sbin/ksu with args in the guest, for at most d.
func RunKSU(ctx context.Context, g *qemu.Guest, d time.Duration, args ...string) (KSUResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	res, err := g.Run(ctx, append([]string{"/usr/sbin/ksu"}, args...)...)
	if err != nil {
		return KSUResult{}, fmt.Errorf("run ksu %s: %w", strings.Join(args, " "), err)
	}
	return KSUResult{Stdout: string(res.Stdout), Stderr: string(res.Stderr), ExitCode: res.ExitCode}, nil
}

// CheckReport is the part of "ksu check --json" that tests read.
type CheckReport struct {
	Proceed bool `json:"proceed"`
	Trees   []struct {
		Root        int   `json:"root"`
		PIDs        []int `json:"pids"`
		Preservable bool  `json:"preservable"`
		Blockers    []struct {
			PID    int    `json:"pid"`
			Object string `json:"object"`
			Kind   string `json:"kind"`
			Reason string `json:"reason"`
			Hint   string `json:"hint"`
		} `json:"blockers"`
		RSSBytes      uint64 `json:"rss_bytes"`
		SnapshotBytes uint64 `json:"snapshot_bytes_estimate"`
	} `json:"trees"`
	Skipped []struct {
		PID    int    `json:"pid"`
		Comm   string `json:"comm"`
		Reason string `json:"reason"`
	} `json:"skipped"`
	Kernel *struct {
		Path        string   `json:"path"`
		Release     string   `json:"release"`
		Loadable    bool     `json:"loadable"`
		Problems    []string `json:"problems"`
		Lockdown    string   `json:"lockdown"`
		BootDefault string   `json:"boot_default"`
	} `json:"kernel"`
	Memory *struct {
		AvailableBytes uint64 `json:"available_bytes"`
		NeededBytes    uint64 `json:"needed_bytes"`
		Enough         bool   `json:"enough"`
	} `json:"memory"`
}

// Check runs "ksu check --json" with args in the guest and decodes its
// report. The exit status is returned with it: 0 proceed, 1 not.
func Check(ctx context.Context, g *qemu.Guest, args ...string) (CheckReport, KSUResult, error) {
	res, err := RunKSU(ctx, g, time.Minute, append([]string{"check", "--json"}, args...)...)
	if err != nil {
		return CheckReport{}, res, err
	}
	var rep CheckReport
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		return rep, res, fmt.Errorf("decode ksu check --json (exit %d, stderr %q): %w", res.ExitCode, res.Stderr, err)
	}
	return rep, res, nil
}

// StatusReport is the part of "ksu status --json" that tests read.
type StatusReport struct {
	Source string `json:"source"`
	Saved  string `json:"saved"`
	Report Report `json:"report"`
}

// Status runs "ksu status --json" in the guest and decodes its output.
func Status(ctx context.Context, g *qemu.Guest) (StatusReport, error) {
	res, err := RunKSU(ctx, g, time.Minute, "status", "--json")
	if err != nil {
		return StatusReport{}, err
	}
	if res.ExitCode != 0 {
		return StatusReport{}, fmt.Errorf("ksu status --json: exit %d: %s", res.ExitCode, res.Stderr)
	}
	var st StatusReport
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
		return st, fmt.Errorf("decode ksu status --json: %w", err)
	}
	return st, nil
}

// KexecLoaded reads /sys/kernel/kexec_loaded in the guest: whether a
// kernel is loaded for kexec.
func KexecLoaded(ctx context.Context, g *qemu.Guest) (bool, error) {
	out, err := g.Output(ctx, "cat", "/sys/kernel/kexec_loaded")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) == "1", nil
}

// WaitJournal polls "journalctl -t ident" for the current boot in the
// guest until its messages contain want, for at most d, and returns the
// messages. Units that log at boot may still run when the guest agent
// first responds.
func WaitJournal(ctx context.Context, g *qemu.Guest, ident, want string, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last string
	for {
		out, err := g.Output(ctx, "journalctl", "-b", "-t", ident, "-o", "cat", "--no-pager")
		last = string(out)
		if err == nil && strings.Contains(last, want) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("journalctl -t %s has no %q after %v (last error %v)", ident, want, d, err)
		case <-time.After(time.Second):
		}
	}
}
