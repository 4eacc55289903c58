package workloads

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// pollInterval is how often the helpers look at the log and the process.
const pollInterval = 10 * time.Millisecond

// killTimeout bounds the wait for a killed child to be reaped.
const killTimeout = 5 * time.Second

// ErrNoCompiler is returned by Build when gcc is not installed.
var ErrNoCompiler = errors.New("gcc not found")

// Workload is a running workload: one this package started, or one that a
// restore recreated with the same pid.
type Workload struct {
	Name string // base name of the binary
	PID  int
	Log  string // file that receives the workload's stdout and stderr

	proc   *os.Process
	leader bool          // Start made PID the leader of a new process group
	exited chan struct{} // closed once Start's child is reaped; nil after Attach
	state  *os.ProcessState
}

// Build builds every workload into outDir with build.sh from this
// package's source directory. It returns an error wrapping ErrNoCompiler
// when gcc is missing.
func Build(ctx context.Context, outDir string) error {
	if _, err := exec.LookPath("gcc"); err != nil {
		return fmt.Errorf("build workloads: %w", ErrNoCompiler)
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("build workloads: source directory unknown")
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(filepath.Dir(file), "build.sh"), outDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build workloads: %w\n%s", err, tail(string(out), 20))
	}
	return nil
}

// Start runs bin with args in directory dir, which becomes the workload's
// scratch directory, as the leader of a new process group. Its stdout and
// stderr go to dir/workload.log, and stdin is /dev/null. When ctx ends
// first, the workload and its process group are killed.
func Start(ctx context.Context, bin, dir string, args ...string) (*Workload, error) {
	logPath := filepath.Join(dir, "workload.log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start workload %s: %w", bin, err)
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start workload %s: %w", bin, err)
	}
	w := &Workload{
		Name:   filepath.Base(bin),
		PID:    cmd.Process.Pid,
		Log:    logPath,
		proc:   cmd.Process,
		leader: true,
		exited: make(chan struct{}),
	}
	go w.reap(ctx, cmd)
	return w, nil
}

func (w *Workload) reap(ctx context.Context, cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			w.killGroup()
		case <-done:
		}
	}()
	cmd.Wait()
	w.state = cmd.ProcessState
	close(done)
	close(w.exited)
}

// Attach returns a handle on a workload that is not a child of this
// process, such as one a restore recreated: pid is its pid, and logPath
// is the file its stdout goes to.
func Attach(pid int, logPath string) (*Workload, error) {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, fmt.Errorf("attach to workload pid %d: %w", pid, err)
	}
	if err := proc.Signal(syscall.Signal(0)); err != nil {
		return nil, fmt.Errorf("attach to workload pid %d: %w", pid, err)
	}
	name := ""
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		name = strings.TrimSpace(string(comm))
	}
	pgid, _ := syscall.Getpgid(pid)
	return &Workload{Name: name, PID: pid, Log: logPath, proc: proc, leader: pgid == pid}, nil
}

// alive reports whether the workload has not exited.
func (w *Workload) alive() bool {
	if w.exited != nil {
		select {
		case <-w.exited:
			return false
		default:
			return true
		}
	}
	return w.proc.Signal(syscall.Signal(0)) == nil
}

// output returns the log, or the error of reading it.
func (w *Workload) output() (string, error) {
	data, err := os.ReadFile(w.Log)
	if err != nil {
		return "", fmt.Errorf("read workload %s log: %w", w.Name, err)
	}
	return string(data), nil
}

// WaitReady waits until the workload prints READY. It fails when the
// workload reports a setup failure, exits, or ctx ends first.
func (w *Workload) WaitReady(ctx context.Context) error {
	for {
		// Check liveness before reading the log. A workload that prints
		// and exits after the read is then still alive here, and the
		// next read finds its last lines.
		alive := w.alive()
		out, err := w.output()
		if err != nil {
			return err
		}
		if hasLine(out, "READY") {
			return nil
		}
		if line := resultLine(out); line != "" {
			return fmt.Errorf("workload %s pid %d: %s", w.Name, w.PID, line)
		}
		if !alive {
			return fmt.Errorf("workload %s pid %d exited before READY: %s", w.Name, w.PID, tail(out, 5))
		}
		if err := sleep(ctx); err != nil {
			return fmt.Errorf("wait for workload %s pid %d to be ready: %w\n%s", w.Name, w.PID, err, tail(out, 5))
		}
	}
}

// Check sends the check signal and waits for the verdict. It returns
// whether the workload printed PASS, what it printed after READY, and an
// error when no verdict came before ctx ended, or when the exit status of
// a child started by Start disagrees with the verdict.
func (w *Workload) Check(ctx context.Context) (pass bool, output string, err error) {
	if err := w.proc.Signal(syscall.SIGUSR2); err != nil {
		return false, "", fmt.Errorf("check workload %s pid %d: %w", w.Name, w.PID, err)
	}
	line, output, err := w.waitVerdict(ctx)
	if err != nil {
		return false, output, err
	}
	pass = line == "PASS"
	if w.exited == nil {
		return pass, output, nil
	}
	select {
	case <-w.exited:
	case <-ctx.Done():
		return pass, output, fmt.Errorf("wait for workload %s pid %d to exit: %w", w.Name, w.PID, ctx.Err())
	}
	if code := w.state.ExitCode(); pass != (code == 0) {
		return false, output, fmt.Errorf("workload %s pid %d printed %q but exited with %v", w.Name, w.PID, line, w.state)
	}
	return pass, output, nil
}

func (w *Workload) waitVerdict(ctx context.Context) (line, output string, err error) {
	for {
		alive := w.alive() // before the read, for the reason in WaitReady
		out, err := w.output()
		if err != nil {
			return "", "", err
		}
		_, after, _ := strings.Cut(out, "READY\n")
		if line := resultLine(after); line != "" {
			return line, strings.TrimSpace(after), nil
		}
		if !alive {
			return "", after, fmt.Errorf("workload %s pid %d exited without a verdict: %s", w.Name, w.PID, tail(out, 5))
		}
		if err := sleep(ctx); err != nil {
			return "", after, fmt.Errorf("wait for workload %s pid %d verdict: %w", w.Name, w.PID, err)
		}
	}
}

// Kill sends SIGKILL to the workload and, when Start created its process
// group, to that group, then waits up to 5 s for a child to be reaped. It
// signals nothing once Start's child has been reaped, because its pid
// may then belong to another process.
func (w *Workload) Kill() error {
	if !w.alive() {
		return nil
	}
	w.killGroup()
	if w.exited == nil {
		return nil
	}
	select {
	case <-w.exited:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("kill workload %s pid %d: still running after %v", w.Name, w.PID, killTimeout)
	}
}

// killGroup kills the workload through its pidfd, which fails once the
// process has been reaped, and only then its process group.
func (w *Workload) killGroup() {
	if err := w.proc.Signal(syscall.SIGKILL); err != nil {
		return
	}
	if w.leader {
		// N.B. members that called setsid have left the group; the
		// workloads give them a parent-death signal instead.
		syscall.Kill(-w.PID, syscall.SIGKILL)
	}
}

func sleep(ctx context.Context) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == want {
			return true
		}
	}
	return false
}

// resultLine returns the first complete PASS or FAIL line of out, or "".
func resultLine(out string) string {
	lines := strings.Split(out, "\n")
	for _, l := range lines[:len(lines)-1] {
		if l == "PASS" || strings.HasPrefix(l, "FAIL: ") {
			return l
		}
	}
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
