package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeGrace is how long a "run" waits for its output pipes to close after
// the command exits or is killed. A background child that keeps stdout open
// would otherwise hold the response until the timeout.
const pipeGrace = time.Second

// run executes a "run" request in a new process group and waits for it.
func (s *Server) run(ctx context.Context, req Request) Response {
	timeout := requestTimeout(req.TimeoutMS)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := command(ctx, req)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	cmd.WaitDelay = pipeGrace
	if len(req.Stdin) > 0 {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	stdout := &cappedBuffer{max: MaxOutput}
	stderr := &cappedBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	start := time.Now()
	err := cmd.Run()
	resp := Response{
		ID:        req.ID,
		Stdout:    stdout.buf.Bytes(),
		Stderr:    stderr.buf.Bytes(),
		Truncated: stdout.truncated || stderr.truncated,
	}
	resp = s.finishRun(ctx, req, cmd, err, resp)
	s.logf("run id=%d %q: exit %d signal %d in %s", req.ID, req.Argv, resp.ExitCode,
		resp.Signal, time.Since(start).Round(time.Millisecond))
	return resp
}

// finishRun fills in the exit status of a finished "run" and turns a start
// failure or a timeout into an error response.
func (s *Server) finishRun(ctx context.Context, req Request, cmd *exec.Cmd, err error,
	resp Response) Response {
	if cmd.ProcessState == nil {
		return failure(req.ID, CodeStart, "start %q: %v", req.Argv[0], err)
	}
	resp.ExitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		resp.Signal = int(ws.Signal())
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		resp.Error = &Error{Code: CodeTimeout, Message: "killed after " +
			requestTimeout(req.TimeoutMS).String()}
		return resp
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		s.logf("run id=%d %q: output pipes still open %s after exit, output may be cut",
			req.ID, req.Argv, pipeGrace)
	}
	return resp
}

// spawn starts a "spawn" request in its own session and returns without
// waiting; a goroutine reaps the process when it exits.
func (s *Server) spawn(req Request) Response {
	log, err := s.openSpawnLog(req.Log)
	if err != nil {
		return failure(req.ID, CodeStart, "%v", err)
	}
	defer log.Close()
	cmd := command(context.Background(), req)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return failure(req.ID, CodeStart, "start %q: %v", req.Argv[0], err)
	}
	s.logf("spawn id=%d %q: pid %d, output in %s", req.ID, req.Argv, cmd.Process.Pid, log.Name())
	go func() {
		err := cmd.Wait()
		s.logf("spawned pid %d %q exited: %v", cmd.Process.Pid, req.Argv, err)
	}()
	return Response{ID: req.ID, PID: cmd.Process.Pid, Log: log.Name()}
}

func (s *Server) openSpawnLog(path string) (*os.File, error) {
	if path != "" {
		return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	if err := os.MkdirAll(s.SpawnDir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(s.SpawnDir, "spawn-*.log")
}

func command(ctx context.Context, req Request) *exec.Cmd {
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Dir = req.Dir
	return cmd
}

func requestTimeout(ms int64) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d <= 0:
		return DefaultTimeout
	case d > MaxTimeout:
		return MaxTimeout
	}
	return d
}

// cappedBuffer keeps the first max bytes written to it and reports the rest
// as written, so the command gets no write error.
type cappedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	b.buf.Write(p[:max(room, 0)])
	b.truncated = true
	return len(p), nil
}
