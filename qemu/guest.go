package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ksu-project/ksu/qemu/internal/agent"
)

const (
	// socketWait bounds the wait for QEMU to create its sockets.
	socketWait = 10 * time.Second
	// exitWait bounds the wait for QEMU to go away once killed, and for
	// its exit status once its console has closed.
	exitWait = 10 * time.Second
)

// ErrExited is wrapped by the errors of waits and requests that failed
// because QEMU exited: the guest powered off, rebooted (QEMU runs with
// -no-reboot), panicked (with panic=-1), or QEMU itself failed.
var ErrExited = errors.New("qemu exited")

// Guest is a running QEMU guest. Its methods are safe for concurrent use.
type Guest struct {
	cfg         Config
	accel       string
	accelReason string
	paths       paths
	sockDir     string
	ownSockDir  bool

	cmd       *exec.Cmd
	startedAt time.Time
	console   *console
	agent     *agent.Client
	qmp       qmpConn

	exited  chan struct{} // closed when QEMU has exited or failed to start
	exitErr error         // cmd.Wait's result; read only after exited is closed

	closeOnce sync.Once
}

// Start boots a guest. ctx bounds the start-up only (the KVM probe, the
// overlay, QEMU's sockets); the guest runs until Close. The caller must
// call Close, even when the guest has exited.
func Start(ctx context.Context, cfg Config) (*Guest, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	g := &Guest{cfg: cfg, exited: make(chan struct{})}
	if err := g.prepare(ctx); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.launch(); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.connectAgent(ctx); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// prepare chooses the accelerator, the socket paths and the host ports,
// and creates the disk overlay.
func (g *Guest) prepare(ctx context.Context) error {
	var err error
	g.sockDir, g.ownSockDir, err = socketDir(g.cfg.WorkDir)
	if err != nil {
		return err
	}
	g.paths.agent = filepath.Join(g.sockDir, "agent.sock")
	g.paths.qmp = filepath.Join(g.sockDir, "qmp.sock")
	g.qmp.path = g.paths.qmp
	g.accel, g.accelReason, err = chooseAccel(ctx, g.cfg.Binary, g.cfg.Kernel)
	if err != nil {
		return err
	}
	if err := pickFreePorts(g.cfg.Forwards); err != nil {
		return err
	}
	if g.cfg.Disk == "" {
		return nil
	}
	g.paths.overlay = filepath.Join(g.cfg.WorkDir, "disk.qcow2")
	return createOverlay(ctx, g.cfg.Disk, g.paths.overlay)
}

// createOverlay creates a qcow2 file at overlay whose reads fall through to
// the raw image disk and whose writes stay in the overlay.
func createOverlay(ctx context.Context, disk, overlay string) error {
	abs, err := filepath.Abs(disk)
	if err != nil {
		return fmt.Errorf("create overlay for %s: %w", disk, err)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2",
		"-b", abs, "-F", "raw", overlay).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create overlay for %s: qemu-img: %w: %s", disk, err,
			strings.TrimSpace(string(out)))
	}
	return nil
}

// launch starts QEMU with its console on a pipe that the console reads.
func (g *Guest) launch() error {
	consoleLog, err := os.Create(filepath.Join(g.cfg.WorkDir, "console.log"))
	if err != nil {
		return fmt.Errorf("create console log: %w", err)
	}
	stderr, err := os.Create(g.qemuLog())
	if err != nil {
		consoleLog.Close()
		return fmt.Errorf("create qemu log: %w", err)
	}
	defer stderr.Close()
	r, w, err := os.Pipe()
	if err != nil {
		consoleLog.Close()
		return fmt.Errorf("create console pipe: %w", err)
	}
	g.cmd = exec.Command(g.cfg.Binary, args(g.cfg, g.accel, g.paths)...)
	g.cmd.Stdout, g.cmd.Stderr = w, stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g.startedAt = time.Now()

	started := make(chan error, 1)
	go g.supervise(started)
	err = <-started
	w.Close()
	if err != nil {
		r.Close()
		consoleLog.Close()
		return fmt.Errorf("start %s: %w", g.cfg.Binary, err)
	}
	g.console = newConsole(g.startedAt, consoleLog)
	go func() {
		g.console.readFrom(r)
		r.Close()
		consoleLog.Close()
	}()
	return nil
}

// supervise starts QEMU and waits for it to exit.
//
// N.B. The kernel sends Pdeathsig when the thread that forked the child
// exits, not when the process does, and the Go runtime may end idle
// threads. Locking this goroutine to its thread until QEMU is gone keeps
// the signal for the death of the test process.
func (g *Guest) supervise(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := g.cmd.Start(); err != nil {
		g.exitErr = err
		close(g.exited)
		started <- err
		return
	}
	started <- nil
	g.exitErr = g.cmd.Wait()
	close(g.exited)
}

// connectAgent connects to the agent socket that QEMU creates at start.
// The agent itself may start much later; WaitAgent waits for it.
func (g *Guest) connectAgent(ctx context.Context) error {
	deadline := time.Now().Add(socketWait)
	for {
		conn, err := net.Dial("unix", g.paths.agent)
		if err == nil {
			g.agent = agent.NewClient(conn)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connect to agent socket: %w", err)
		}
		select {
		case <-g.exited:
			return fmt.Errorf("connect to agent socket: %w", g.exitError())
		case <-ctx.Done():
			return fmt.Errorf("connect to agent socket: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close kills QEMU if it still runs and removes its sockets. It keeps the
// work directory. Close is idempotent and always returns nil; the error
// result lets it serve as an io.Closer.
func (g *Guest) Close() error {
	g.closeOnce.Do(func() {
		if g.cmd != nil && g.cmd.Process != nil {
			g.cmd.Process.Kill()
			select {
			case <-g.exited:
			case <-time.After(exitWait):
			}
		}
		if g.agent != nil {
			g.agent.Close()
		}
		g.qmp.shutdown()
		if g.console != nil {
			select {
			case <-g.console.done:
			case <-time.After(exitWait):
			}
		}
		os.Remove(g.paths.agent)
		os.Remove(g.paths.qmp)
		if g.ownSockDir {
			os.RemoveAll(g.sockDir)
		}
	})
	return nil
}

// Wait waits for QEMU to exit and returns its exit error: nil after the
// guest powered off, rebooted or panicked, since QEMU then exits with
// status 0.
func (g *Guest) Wait(ctx context.Context) error {
	select {
	case <-g.exited:
		return g.exitErr
	case <-ctx.Done():
		return fmt.Errorf("wait for qemu to exit: %w", ctx.Err())
	}
}

// Exited returns a channel that is closed when QEMU has exited.
func (g *Guest) Exited() <-chan struct{} {
	return g.exited
}

// Accel returns the accelerator in use, AccelKVM or AccelTCG.
func (g *Guest) Accel() string {
	return g.accel
}

// AccelReason returns why Accel was chosen: the probe's outcome or the
// environment variable that set it.
func (g *Guest) AccelReason() string {
	return g.accelReason
}

// StartedAt returns when QEMU was started.
func (g *Guest) StartedAt() time.Time {
	return g.startedAt
}

// WorkDir returns the guest's work directory.
func (g *Guest) WorkDir() string {
	return g.cfg.WorkDir
}

// ConsoleLog returns the path of the console log, where each line is
// prefixed with the seconds since QEMU started.
func (g *Guest) ConsoleLog() string {
	return filepath.Join(g.cfg.WorkDir, "console.log")
}

func (g *Guest) qemuLog() string {
	return filepath.Join(g.cfg.WorkDir, "qemu.log")
}

// Forwards returns the port forwards with every host port picked.
func (g *Guest) Forwards() []Forward {
	return append([]Forward(nil), g.cfg.Forwards...)
}

// HostPort returns the host port forwarded to guestPort, or 0 if none is.
func (g *Guest) HostPort(guestPort int) int {
	for _, f := range g.cfg.Forwards {
		if f.GuestPort == guestPort {
			return f.HostPort
		}
	}
	return 0
}

// exitError describes QEMU's exit for an error message. It waits briefly
// for the exit status, because the console or the agent socket closes just
// before the process is reaped. It wraps ErrExited if QEMU did exit.
func (g *Guest) exitError() error {
	select {
	case <-g.exited:
	case <-time.After(exitWait):
		return fmt.Errorf("qemu still runs %s after its console or agent socket closed", exitWait)
	}
	status := "exit status 0: the guest powered off, rebooted or panicked"
	if g.exitErr != nil {
		status = g.exitErr.Error()
	}
	msg := fmt.Sprintf("%s (%s)", ErrExited, status)
	if tail := fileTail(g.qemuLog(), 5); tail != "" {
		msg += "; qemu.log ends with:\n" + tail
	}
	return &exitedError{msg: msg}
}

type exitedError struct{ msg string }

func (e *exitedError) Error() string { return e.msg }
func (e *exitedError) Unwrap() error { return ErrExited }

// consoleTail formats the last console lines for an error message.
func (g *Guest) consoleTail() string {
	if g.console == nil {
		return ""
	}
	lines := g.console.tail(tailLines)
	if len(lines) == 0 {
		return "\nno console output"
	}
	return fmt.Sprintf("\nlast %d console lines:\n  | %s", len(lines), strings.Join(lines, "\n  | "))
}

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(strings.Join(lines[max(len(lines)-n, 0):], "\n"))
}
