package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/qemu"
)

// WorkloadDir is the guest directory of the test workloads.
const WorkloadDir = "/usr/local/lib/ksu-tests"

// Preserved is a process started in the guest for a preservation test.
// Its scratch directory and log are on the root disk, so both survive
// the kexec.
type Preserved struct {
	PID int
	Dir string // scratch directory and working directory
	Log string // stdout and stderr
}

// StartWorkload starts argv in a new scratch directory of the guest's root
// disk and waits until its log has a line READY.
func StartWorkload(ctx context.Context, g *qemu.Guest, name string, argv ...string) (Preserved, error) {
	dir := "/var/tmp/ksu-preserve-" + name
	if _, err := g.Output(ctx, "mkdir", "-p", dir); err != nil {
		return Preserved{}, err
	}
	p, err := g.SpawnCmd(ctx, qemu.Cmd{Argv: argv, Dir: dir, Log: dir + "/workload.log"})
	if err != nil {
		return Preserved{}, fmt.Errorf("start %s: %w", name, err)
	}
	w := Preserved{PID: p.PID, Dir: dir, Log: p.Log}
	if _, err := w.WaitLog(ctx, g, time.Minute, "READY"); err != nil {
		return w, fmt.Errorf("start %s: %w", name, err)
	}
	return w, nil
}

// WaitLog polls the log, at most for d, until a line starts with one of
// prefixes, and returns that line.
func (w Preserved) WaitLog(ctx context.Context, g *qemu.Guest, d time.Duration, prefixes ...string) (string, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		out, err := g.Output(ctx, "cat", w.Log)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, p := range prefixes {
				if strings.HasPrefix(line, p) {
					return line, nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("no line starting with %q in %s after %v", prefixes, w.Log, d)
}

// Alive checks that the process runs with the command line it had.
func (w Preserved) Alive(ctx context.Context, g *qemu.Guest, wantArgv0 string) error {
	res, err := g.Run(ctx, "kill", "-0", strconv.Itoa(w.PID))
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("process %d is gone: kill -0: %s", w.PID, res.Stderr)
	}
	cmdline, err := g.Output(ctx, "cat", fmt.Sprintf("/proc/%d/cmdline", w.PID))
	if err != nil {
		return err
	}
	if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != wantArgv0 {
		return fmt.Errorf("process %d runs %q, want %q", w.PID, argv0, wantArgv0)
	}
	return nil
}

// Check sends SIGUSR2 and returns the verdict line, PASS or FAIL: ...
func (w Preserved) Check(ctx context.Context, g *qemu.Guest) (string, error) {
	if err := w.RequestCheck(ctx, g); err != nil {
		return "", err
	}
	return w.Verdict(ctx, g, time.Minute)
}

// RequestCheck sends SIGUSR2, which makes the process check itself.
func (w Preserved) RequestCheck(ctx context.Context, g *qemu.Guest) error {
	res, err := g.Run(ctx, "kill", "-USR2", strconv.Itoa(w.PID))
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("kill -USR2 %d: %s", w.PID, res.Stderr)
	}
	return nil
}

// Verdict waits at most d for the verdict line, PASS or FAIL: ..., that
// the process logs after RequestCheck.
func (w Preserved) Verdict(ctx context.Context, g *qemu.Guest, d time.Duration) (string, error) {
	return w.WaitLog(ctx, g, d, "PASS", "FAIL")
}

// Report is the part of ksu-init's /run/ksu/report.json that tests read.
type Report struct {
	Kernel         string       `json:"kernel"`
	SnapshotKernel string       `json:"snapshot_kernel"`
	Restored       []int32      `json:"restored"`
	Failures       []Failure    `json:"failures"`
	Phases         []phase.Span `json:"phases"`
	Pause          int64        `json:"pause_ns"`
	Clocks         *struct {
		Pause     int64 `json:"pause_ns"`
		Monotonic int64 `json:"monotonic_offset_ns"`
		Boottime  int64 `json:"boottime_offset_ns"`
	} `json:"clocks"`
}

// Failure is a set of processes that were not restored.
type Failure struct {
	PIDs   []int32 `json:"pids"`
	Reason string  `json:"reason"`
}

// ReadReport reads the guest's /run/ksu/report.json.
func ReadReport(ctx context.Context, g *qemu.Guest) (Report, error) {
	out, err := g.Output(ctx, "cat", "/run/ksu/report.json")
	if err != nil {
		return Report{}, fmt.Errorf("read the restore report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("decode the restore report: %w", err)
	}
	return r, nil
}

// ClockSource is a C program that samples CLOCK_MONOTONIC and
// CLOCK_BOOTTIME every millisecond. It prints READY, then every second a
// line "clock MONO_NS BOOT_NS". When a clock goes back between two
// samples, it prints "back MONO_NS BOOT_NS" with how far each clock went
// back. When a clock steps forward by more than ClockStepReported, it
// prints "step MONO_NS BOOT_NS" with the two steps. So a test sees what a
// switch did to the clocks without stopping the program. On SIGUSR2 it
// prints PASS, or FAIL with the largest backward step it saw, and exits.
const ClockSource = `#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define STEP_NS 200000000LL

static volatile sig_atomic_t check;
static void on_usr2(int sig) { (void)sig; check = 1; }

static long long now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	long long last_mono = now(CLOCK_MONOTONIC), last_boot = now(CLOCK_BOOTTIME);
	long long back = 0, printed = 0;
	signal(SIGUSR2, on_usr2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY\n");
	while (!check) {
		long long m = now(CLOCK_MONOTONIC), b = now(CLOCK_BOOTTIME);
		if (last_mono - m > back) back = last_mono - m;
		if (last_boot - b > back) back = last_boot - b;
		if (m < last_mono || b < last_boot)
			printf("back %lld %lld\n", last_mono - m, last_boot - b);
		else if (m - last_mono > STEP_NS || b - last_boot > STEP_NS)
			printf("step %lld %lld\n", m - last_mono, b - last_boot);
		last_mono = m, last_boot = b;
		if (m - printed >= 1000000000LL) {
			printf("clock %lld %lld\n", m, b);
			printed = m;
		}
		usleep(1000);
	}
	if (back > 0) {
		printf("FAIL: a clock went back by %lld ns\n", back);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
`

// ClockStepReported is the step forward between two samples above which
// ClockSource prints a "step" line (STEP_NS in its source).
const ClockStepReported = 200 * time.Millisecond

// InstallClock compiles ClockSource statically on the host and copies the
// program to the guest as path.
func InstallClock(ctx context.Context, g *qemu.Guest, workDir, path string) error {
	src := filepath.Join(workDir, "clock.c")
	bin := filepath.Join(workDir, "clock")
	if err := os.WriteFile(src, []byte(ClockSource), 0o644); err != nil {
		return err
	}
	cc := exec.CommandContext(ctx, "gcc", "-static", "-O2", "-Wall", "-o", bin, src)
	if out, err := cc.CombinedOutput(); err != nil {
		return fmt.Errorf("compile the clock program: %w: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	res, err := g.Exec(ctx, qemu.Cmd{Argv: []string{"sh", "-c", `cat > "$0" && chmod 755 "$0"`, path}, Stdin: data})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("copy the clock program to %s: %s", path, res.Stderr)
	}
	return nil
}

// LastClock returns the values of the last "clock MONO BOOT" line of
// log, in nanoseconds.
func LastClock(log string) (mono, boot int64, err error) {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) == 3 && f[0] == "clock" {
			mono, err1 := strconv.ParseInt(f[1], 10, 64)
			boot, err2 := strconv.ParseInt(f[2], 10, 64)
			return mono, boot, errors.Join(err1, err2)
		}
	}
	return 0, 0, errors.New("no clock line in the log")
}

// ClockSteps reads the "back" and "step" lines of a ClockSource log and
// returns the largest step forward of CLOCK_MONOTONIC and of
// CLOCK_BOOTTIME, and the first "back" line, or "" when no clock went
// back. Steps of at most ClockStepReported are not in the log, so a
// result below it means no larger step happened.
func ClockSteps(log string) (mono, boot time.Duration, back string, err error) {
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || (f[0] != "back" && f[0] != "step") {
			continue
		}
		if f[0] == "back" {
			if back == "" {
				back = line
			}
			continue
		}
		m, err1 := strconv.ParseInt(f[1], 10, 64)
		b, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, back, fmt.Errorf("parse clock line %q: %w", line, err)
		}
		mono, boot = max(mono, time.Duration(m)), max(boot, time.Duration(b))
	}
	return mono, boot, back, nil
}
