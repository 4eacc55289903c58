package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ksu-project/ksu/qemu/internal/agent"
)

const (
	// pingTimeout bounds one ping of WaitAgent. A running agent responds
	// within milliseconds, even under emulation.
	pingTimeout = 2 * time.Second
	// defaultAgentWait bounds WaitAgent when ctx has no deadline.
	defaultAgentWait = 5 * time.Minute
)

// ErrCommandTimeout is wrapped by the error of a command that the agent
// killed because it ran past its timeout.
var ErrCommandTimeout = agent.ErrTimeout

// AgentInfo describes the agent process that responded to a ping.
type AgentInfo struct {
	// Session is a random id the agent picked at start; it changes when a
	// new agent takes over, after a restart or a kexec.
	Session string
	PID     int
	// Release is the guest kernel release (uname -r).
	Release string
	// BootID is the guest's /proc/sys/kernel/random/boot_id, which changes
	// with every boot, kexec included.
	BootID string
}

// Cmd is a command to run in the guest.
type Cmd struct {
	// Argv is the command and its arguments. argv[0] is resolved through
	// the agent's PATH; no shell is involved unless Argv names one.
	Argv []string
	// Env holds KEY=VALUE entries added to the agent's environment.
	Env []string
	// Dir is the working directory; empty means the agent's.
	Dir string
	// Stdin is the command's standard input (Exec only).
	Stdin []byte
	// Log is the guest file that receives the output (SpawnCmd only).
	// Empty lets the agent create one in its spawn directory
	// (/var/log/ksu-agent unless ksu-agent --spawn-dir sets another).
	Log string
}

// Result is the outcome of a command that ran to completion or timed out.
type Result struct {
	Stdout, Stderr []byte
	// ExitCode is the exit status, or -1 if a signal ended the command.
	ExitCode int
	// Signal is the signal that ended the command, or 0.
	Signal int
	// Truncated reports that an output stream exceeded 16 MiB and the
	// rest was discarded.
	Truncated bool
}

// Process is a command started by Spawn.
type Process struct {
	PID int
	// Log is the guest file that receives the process's stdout and stderr.
	Log string
}

// WaitAgent pings the guest agent until it responds and returns its
// description. It works across a kexec of the guest, because the new agent
// responds once it has started. Without a deadline on ctx it gives up after
// five minutes. It fails at once if QEMU exits.
func (g *Guest) WaitAgent(ctx context.Context) (AgentInfo, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultAgentWait)
		defer cancel()
	}
	for {
		pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
		info, err := g.agent.Ping(pingCtx)
		cancel()
		if err == nil {
			return AgentInfo{Session: info.Session, PID: info.PID, Release: info.Release,
				BootID: info.BootID}, nil
		}
		timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
		if ctx.Err() != nil || !timedOut {
			return AgentInfo{}, g.agentError("wait for guest agent", err)
		}
	}
}

// Run runs argv in the guest and waits for it. It returns an error only if
// the command could not run to completion: the agent is unreachable, the
// command cannot start, or it timed out (then Result holds the output so
// far and the error wraps ErrCommandTimeout). A non-zero exit status is
// not an error; check Result.ExitCode, or use Output.
//
// The command's timeout is ctx's deadline, less a margin for the reply;
// without a deadline it is five minutes.
func (g *Guest) Run(ctx context.Context, argv ...string) (Result, error) {
	return g.Exec(ctx, Cmd{Argv: argv})
}

// Exec runs cmd in the guest and waits for it, as Run does.
func (g *Guest) Exec(ctx context.Context, cmd Cmd) (Result, error) {
	resp, err := g.agent.Do(ctx, agent.Request{
		Op:    agent.OpRun,
		Argv:  cmd.Argv,
		Env:   cmd.Env,
		Dir:   cmd.Dir,
		Stdin: cmd.Stdin,
	})
	res := Result{
		Stdout:    resp.Stdout,
		Stderr:    resp.Stderr,
		ExitCode:  resp.ExitCode,
		Signal:    resp.Signal,
		Truncated: resp.Truncated,
	}
	if err != nil {
		return res, g.agentError(fmt.Sprintf("run %q in guest", cmd.Argv), err)
	}
	return res, nil
}

// Output runs argv in the guest and returns its stdout. Unlike Run, it
// also fails when the command exits with a non-zero status or is killed;
// that error quotes the end of stderr.
func (g *Guest) Output(ctx context.Context, argv ...string) ([]byte, error) {
	res, err := g.Run(ctx, argv...)
	if err != nil {
		return res.Stdout, err
	}
	if res.ExitCode != 0 {
		status := fmt.Sprintf("exit status %d", res.ExitCode)
		if res.Signal != 0 {
			status = fmt.Sprintf("killed by signal %d", res.Signal)
		}
		return res.Stdout, fmt.Errorf("run %q in guest: %s: %s", argv, status, stderrTail(res.Stderr))
	}
	return res.Stdout, nil
}

// Spawn starts argv in the guest in a new session and returns without
// waiting, for commands that do not return, such as a kexec. stdin is
// /dev/null; stdout and stderr go to the file that Process.Log names.
func (g *Guest) Spawn(ctx context.Context, argv ...string) (Process, error) {
	return g.SpawnCmd(ctx, Cmd{Argv: argv})
}

// SpawnCmd starts cmd in the guest as Spawn does. cmd.Stdin must be empty.
func (g *Guest) SpawnCmd(ctx context.Context, cmd Cmd) (Process, error) {
	op := fmt.Sprintf("spawn %q in guest", cmd.Argv)
	if len(cmd.Stdin) > 0 {
		return Process{}, fmt.Errorf("%s: a spawned command cannot take stdin", op)
	}
	resp, err := g.agent.Do(ctx, agent.Request{
		Op:   agent.OpSpawn,
		Argv: cmd.Argv,
		Env:  cmd.Env,
		Dir:  cmd.Dir,
		Log:  cmd.Log,
	})
	if err != nil {
		return Process{}, g.agentError(op, err)
	}
	return Process{PID: resp.PID, Log: resp.Log}, nil
}

// agentError prefixes err with op. When the agent connection closed because
// QEMU exited, it adds the exit status and the last console lines.
func (g *Guest) agentError(op string, err error) error {
	if errors.Is(err, agent.ErrClosed) {
		return fmt.Errorf("%s: %w%s", op, g.exitError(), g.consoleTail())
	}
	return fmt.Errorf("%s: %w", op, err)
}

// stderrTail returns the last lines of a command's stderr for a message.
func stderrTail(stderr []byte) string {
	const maxBytes = 2048
	s := bytes.TrimSpace(stderr)
	if len(s) == 0 {
		return "no stderr output"
	}
	if len(s) > maxBytes {
		s = append([]byte("…"), s[len(s)-maxBytes:]...)
	}
	return string(s)
}
