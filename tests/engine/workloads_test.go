package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/tests/harness"
	"github.com/ksu-project/ksu/tests/workloads"
)

const (
	// cycleTimeout bounds one workload's whole cycle on the host.
	cycleTimeout = 2 * time.Minute
	// stepTimeout bounds one ksu command or one wait.
	stepTimeout = 60 * time.Second
)

// TestIntegrationWorkloads runs every workload through ksu dump --kill
// and ksu restore on the running kernel, compares what /proc shows of
// its tree before and after, and checks its verdict. A workload whose
// desc has an xfail reason may fail, and must not pass.
func TestIntegrationWorkloads(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	ksu := buildKSU(t, dir)
	bins := buildWorkloads(t, filepath.Join(dir, "workloads"))
	release := kernelRelease(t)

	verdicts := map[string]harness.Verdict{}
	for _, b := range bins {
		t.Run(b.Name, func(t *testing.T) {
			if reason := unmetNeed(b, release); reason != "" {
				t.Skip("skipping: " + reason)
			}
			ctx, cancel := context.WithTimeout(context.Background(), cycleTimeout)
			defer cancel()
			r := &hostRunner{ksu: ksu, bin: b, dir: t.TempDir()}
			if needs(b, workloads.NeedLoopback) {
				r.netns = newNetns(t)
			}
			res := harness.Cycle(ctx, r, b.Name)
			verdicts[b.Name] = harness.Report(t, res, b.Desc.XfailOn(release))
		})
	}
	var table strings.Builder
	for _, b := range bins {
		fmt.Fprintf(&table, "  %-10s %s\n", b.Name, verdicts[b.Name])
	}
	t.Logf("host %s:\n%s", release, table.String())
}

// buildKSU builds the ksu command of this tree into dir.
func buildKSU(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "ksu")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/ksu-project/ksu/cmd/ksu")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ksu: %v\n%s", err, out)
	}
	return bin
}

func buildWorkloads(t *testing.T, dir string) []workloads.Binary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := workloads.Build(ctx, dir)
	if errors.Is(err, workloads.ErrNoCompiler) {
		t.Skip("skipping: gcc not found; install gcc and libc6-dev")
	}
	if err != nil {
		t.Fatal(err)
	}
	bins, err := workloads.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

func kernelRelease(t *testing.T) string {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// unmetNeed returns why this host cannot run the workload, or "".
func unmetNeed(b workloads.Binary, release string) string {
	if ok, err := b.Desc.SupportsKernel(release); err != nil || !ok {
		return fmt.Sprintf("needs kernel %s or later, host runs %s", b.Desc.MinKernel, release)
	}
	tools := []string{}
	for _, need := range b.Desc.Needs {
		switch need {
		case workloads.NeedShell:
			tools = append(tools, "/bin/sh", "cat", "tr", "sha256sum")
		case workloads.NeedLoopback:
			tools = append(tools, "nsenter", "ip")
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return "needs " + tool
		}
	}
	return ""
}

// hostRunner runs a cycle on the host with a ksu binary. A workload that
// needs loopback runs in a network namespace that the test created, with
// lo up, so that it never touches the host's loopback. ksu dump and
// restore then run in that namespace too, because ksu dumps only
// processes that share its namespaces.
type hostRunner struct {
	ksu   string
	bin   workloads.Binary
	dir   string
	netns string              // path of the network namespace, or ""
	wl    *workloads.Workload // the started workload, then the restored one
}

// newNetns creates a named network namespace with lo up for the test
// and returns its path. The test's cleanup deletes it.
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("ksu-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v\n%s", name, err, out)
	}
	return "/run/netns/" + name
}

// inNetns returns the program and arguments that run prog with args in
// the runner's network namespace, if it has one. nsenter entering only
// a network namespace execs prog without forking, so the pid stays.
func (r *hostRunner) inNetns(prog string, args ...string) (string, []string) {
	if r.netns == "" {
		return prog, args
	}
	return "nsenter", append([]string{"--net=" + r.netns, "--", prog}, args...)
}

func (r *hostRunner) snapshot() string { return filepath.Join(r.dir, "snapshot") }

func (r *hostRunner) Start(ctx context.Context, name string) (int, error) {
	scratch := filepath.Join(r.dir, "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return 0, err
	}
	prog, args := r.inNetns(r.bin.Path)
	w, err := workloads.Start(ctx, prog, scratch, args...)
	if err != nil {
		return 0, err
	}
	r.wl = w
	rctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return w.PID, w.WaitReady(rctx)
}

func needs(b workloads.Binary, need string) bool {
	for _, n := range b.Desc.Needs {
		if n == need {
			return true
		}
	}
	return false
}

func (r *hostRunner) Capture(ctx context.Context, pid int) (harness.Tree, error) {
	return harness.Capture("/proc", pid)
}

func (r *hostRunner) Dump(ctx context.Context, pid int) (string, error) {
	return r.runKSU(ctx, "dump", "--pid", fmt.Sprint(pid), "--out", r.snapshot(), "--kill")
}

func (r *hostRunner) Restore(ctx context.Context) (string, error) {
	out, err := r.runKSU(ctx, "restore", r.snapshot())
	if err != nil {
		return out, err
	}
	w, err := workloads.Attach(r.wl.PID, r.wl.Log)
	if err != nil {
		return out, err
	}
	r.wl = w
	return out, nil
}

func (r *hostRunner) runKSU(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	prog, argv := r.inNetns(r.ksu, args...)
	out, err := exec.CommandContext(ctx, prog, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ksu %s: %w", args[0], err)
	}
	return string(out), nil
}

func (r *hostRunner) WaitGone(ctx context.Context, pids []int) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	for _, pid := range pids {
		for processExists(pid) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for pid %d to be gone after the dump: %w", pid, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

func (r *hostRunner) Check(ctx context.Context, pid int) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return r.wl.Check(ctx)
}

// Kill kills the workload through its handle, then whichever other
// pids of its tree still exist.
func (r *hostRunner) Kill(pids []int) {
	if r.wl != nil {
		r.wl.Kill()
	}
	for _, pid := range pids {
		if processExists(pid) {
			unix.Kill(pid, syscall.SIGKILL)
		}
	}
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
