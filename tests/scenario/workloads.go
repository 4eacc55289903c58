package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/harness"
)

// Guest paths of the programs that the workload cycle runs. The guest
// image installs ksu and the workloads there too; InstallTools replaces
// them with the host's build, so a guest always runs the tree under test.
const (
	GuestKSU         = "/usr/sbin/ksu"
	GuestWorkloadDir = "/usr/local/lib/ksu-tests"
	GuestProcState   = "/usr/local/bin/ksu-procstate"
	// guestScratch holds one scratch directory per workload run.
	guestScratch = "/var/tmp/ksu-workloads"
)

// guestStepTimeout bounds one step of a cycle in a guest, which may run
// in software emulation.
const guestStepTimeout = 90 * time.Second

// defaultPatience is the longest wait for a workload's line, within
// guestStepTimeout.
const defaultPatience = 80 * time.Second

// HostTools are host files that InstallTools copies into a guest.
type HostTools struct {
	KSU          string // ksu binary
	ProcState    string // tests/harness/procstate binary
	WorkloadsDir string // directory that workloads.Build wrote
}

// InstallTools copies ksu, procstate and every file of the workloads
// directory (binaries and .desc files) into the guest.
func InstallTools(ctx context.Context, g *qemu.Guest, tools HostTools) error {
	files := map[string]string{GuestKSU: tools.KSU, GuestProcState: tools.ProcState}
	entries, err := os.ReadDir(tools.WorkloadsDir)
	if err != nil {
		return fmt.Errorf("install workloads: %w", err)
	}
	for _, e := range entries {
		files[path.Join(GuestWorkloadDir, e.Name())] = filepath.Join(tools.WorkloadsDir, e.Name())
	}
	for guestPath, hostPath := range files {
		if err := copyToGuest(ctx, g, hostPath, guestPath); err != nil {
			return err
		}
	}
	return nil
}

// copyToGuest writes the host file to guestPath through the agent's
// stdin, executable, replacing any file there by a rename so that a
// running binary is not written over.
func copyToGuest(ctx context.Context, g *qemu.Guest, hostPath, guestPath string) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("copy %s to the guest: %w", hostPath, err)
	}
	script := `mkdir -p "$(dirname "$1")" && cat >"$1.new" && chmod 755 "$1.new" && mv "$1.new" "$1"`
	res, err := g.Exec(ctx, qemu.Cmd{Argv: []string{"sh", "-c", script, "sh", guestPath}, Stdin: data})
	if err != nil {
		return fmt.Errorf("copy %s to guest %s: %w", hostPath, guestPath, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("copy %s to guest %s: exit %d: %s", hostPath, guestPath, res.ExitCode, res.Stderr)
	}
	return nil
}

// GuestRunner runs the workload cycle of package harness inside a guest
// through its agent, with the programs that InstallTools put there. It
// signals only the workload it started, the restored copy of it and
// their descendants, by pid. One GuestRunner runs one cycle at a time.
type GuestRunner struct {
	G *qemu.Guest
	// Patience bounds the wait for a workload's verdict line. Zero
	// means 80 s. A workload expected to fail may hang instead of
	// printing FAIL, so a shorter bound saves emulated time.
	Patience time.Duration

	scratch string // guest scratch directory of the current workload
}

func (r *GuestRunner) log() string      { return path.Join(r.scratch, "workload.log") }
func (r *GuestRunner) snapshot() string { return path.Join(r.scratch, "snapshot") }

// Start starts the workload in a fresh guest scratch directory and waits
// for its READY line.
func (r *GuestRunner) Start(ctx context.Context, name string) (int, error) {
	r.scratch = path.Join(guestScratch, name)
	if _, err := r.G.Output(ctx, "sh", "-c", `rm -rf "$1" && mkdir -p "$1"`, "sh", r.scratch); err != nil {
		return 0, fmt.Errorf("create scratch directory for %s: %w", name, err)
	}
	proc, err := r.G.SpawnCmd(ctx, qemu.Cmd{
		Argv: []string{path.Join(GuestWorkloadDir, name)},
		Dir:  r.scratch,
		Log:  r.log(),
	})
	if err != nil {
		return 0, err
	}
	out, err := r.waitLog(ctx, "READY", proc.PID, defaultPatience)
	if err != nil {
		return proc.PID, fmt.Errorf("wait for workload %s pid %d to be ready: %w", name, proc.PID, err)
	}
	if !hasLine(out, "READY") {
		return proc.PID, fmt.Errorf("workload %s pid %d: %s", name, proc.PID, strings.TrimSpace(out))
	}
	return proc.PID, nil
}

// waitLog waits in the guest, in one agent request, until the workload
// log has a line equal to want or a line starting with "FAIL", or pid is
// gone, or patience (at most defaultPatience) has passed, and returns
// the log. A single request keeps round trips few under software
// emulation.
func (r *GuestRunner) waitLog(ctx context.Context, want string, pid int, patience time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, guestStepTimeout)
	defer cancel()
	if patience <= 0 || patience > defaultPatience {
		patience = defaultPatience
	}
	// Poll every 50 ms until $4 seconds of guest uptime have passed:
	// under emulation the forks of one round take far longer than the
	// sleep, so a count of rounds would bound nothing.
	script := `read up _ </proc/uptime
end=$((${up%.*} + $4))
while :; do
	grep -qx -e "$2" -e PASS "$1" 2>/dev/null && break
	grep -q '^FAIL' "$1" 2>/dev/null && break
	[ -d /proc/$3 ] || break
	read up _ </proc/uptime
	[ "${up%.*}" -lt "$end" ] || break
	sleep 0.05
done
cat "$1"`
	seconds := strconv.Itoa(int(patience / time.Second))
	out, err := r.G.Output(ctx, "sh", "-c", script, "sh", r.log(), want, strconv.Itoa(pid), seconds)
	return string(out), err
}

// Capture captures the tree rooted at pid with procstate in the guest.
func (r *GuestRunner) Capture(ctx context.Context, pid int) (harness.Tree, error) {
	out, err := r.G.Output(ctx, GuestProcState, strconv.Itoa(pid))
	if err != nil {
		return harness.Tree{}, err
	}
	var tree harness.Tree
	if err := json.Unmarshal(out, &tree); err != nil {
		return harness.Tree{}, fmt.Errorf("decode capture of guest pid %d: %w", pid, err)
	}
	return tree, nil
}

// Dump runs ksu dump --kill on the workload in the guest.
func (r *GuestRunner) Dump(ctx context.Context, pid int) (string, error) {
	return r.runKSU(ctx, "dump", "--pid", strconv.Itoa(pid), "--out", r.snapshot(), "--kill")
}

// Restore runs ksu restore on the snapshot of the last Dump.
func (r *GuestRunner) Restore(ctx context.Context) (string, error) {
	return r.runKSU(ctx, "restore", r.snapshot())
}

func (r *GuestRunner) runKSU(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, guestStepTimeout)
	defer cancel()
	res, err := r.G.Run(ctx, append([]string{GuestKSU}, args...)...)
	out := string(res.Stdout) + string(res.Stderr)
	if err != nil {
		return out, err
	}
	if res.ExitCode != 0 {
		return out, fmt.Errorf("ksu %s in the guest: exit %d", args[0], res.ExitCode)
	}
	return out, nil
}

// WaitGone waits until none of pids exists in the guest.
func (r *GuestRunner) WaitGone(ctx context.Context, pids []int) error {
	ctx, cancel := context.WithTimeout(ctx, guestStepTimeout)
	defer cancel()
	// Poll every 20 ms, at most 2500 times (50 s).
	script := `i=0
while [ $i -lt 2500 ]; do
	left=
	for p; do [ -d /proc/$p ] && left="$left $p"; done
	[ -z "$left" ] && exit 0
	sleep 0.02
	i=$((i + 1))
done
echo "still running:$left" >&2
exit 1`
	_, err := r.G.Output(ctx, append([]string{"sh", "-c", script, "sh"}, itoas(pids)...)...)
	if err != nil {
		return fmt.Errorf("wait for the dumped processes to be gone: %w", err)
	}
	return nil
}

// Check sends SIGUSR2 to pid and waits for the workload's verdict.
func (r *GuestRunner) Check(ctx context.Context, pid int) (bool, string, error) {
	if _, err := r.G.Output(ctx, "kill", "-USR2", strconv.Itoa(pid)); err != nil {
		return false, "", fmt.Errorf("check guest workload pid %d: %w", pid, err)
	}
	out, err := r.waitLog(ctx, "PASS", pid, r.Patience)
	if err != nil {
		return false, out, err
	}
	_, after, _ := strings.Cut(out, "READY\n")
	after = strings.TrimSpace(after)
	switch {
	case hasLine(after, "PASS"):
		return true, after, nil
	case strings.Contains(after, "FAIL"):
		return false, after, nil
	}
	return false, after, fmt.Errorf("guest workload pid %d gave no verdict", pid)
}

// Kill kills whichever of pids still exist in the guest.
func (r *GuestRunner) Kill(pids []int) {
	ctx, cancel := context.WithTimeout(context.Background(), guestStepTimeout)
	defer cancel()
	script := `for p; do [ -d /proc/$p ] && kill -KILL $p; done; true`
	r.G.Run(ctx, append([]string{"sh", "-c", script, "sh"}, itoas(pids)...)...)
}

func itoas(ns []int) []string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return s
}

func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == want {
			return true
		}
	}
	return false
}
