package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultMaxRunning is the number of "run" and "spawn" requests a Server
// handles at once when NewServer gets no other limit.
const DefaultMaxRunning = 32

// Server serves agent requests. It runs each request in its own goroutine,
// so a long command does not delay a ping.
type Server struct {
	// SpawnDir receives the output files of "spawn" requests that name
	// none. It is created on first use.
	SpawnDir string
	// Logf reports requests and the errors the server recovers from.
	// Nil discards them.
	Logf func(format string, args ...any)

	info      Info
	slots     chan struct{}
	wmu       sync.Mutex
	malformed int
}

// NewServer returns a Server with a fresh session id that runs at most
// maxRunning commands at once (DefaultMaxRunning if maxRunning <= 0).
func NewServer(spawnDir string, maxRunning int) (*Server, error) {
	if maxRunning <= 0 {
		maxRunning = DefaultMaxRunning
	}
	session, err := newSession()
	if err != nil {
		return nil, err
	}
	info := Info{
		Version: Version,
		Session: session,
		PID:     os.Getpid(),
		Release: kernelRelease(),
		BootID:  bootID(),
	}
	return &Server{
		SpawnDir: spawnDir,
		info:     info,
		slots:    make(chan struct{}, maxRunning),
	}, nil
}

// Info returns what the server reports to a ping.
func (s *Server) Info() Info {
	return s.info
}

// Serve reads requests from r and writes responses to w until r fails or
// reaches EOF, then waits for the requests still running and returns the
// read error (nil at EOF). Cancelling ctx kills running commands.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	lr := newLineReader(r, MaxLine)
	for {
		line, err := lr.next()
		if errors.Is(err, errLineTooLong) {
			s.logMalformed(err)
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		var req Request
		if err := json.Unmarshal(line, &req); err != nil {
			s.logMalformed(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.reply(w, s.handle(ctx, req))
		}()
	}
}

// logMalformed logs skipped input. After a kexec a fragment of an old
// message is expected, so only the 1st, 2nd, 4th, 8th… are logged.
func (s *Server) logMalformed(err error) {
	s.malformed++
	if s.malformed&(s.malformed-1) == 0 {
		s.logf("skip malformed message (%d so far): %v", s.malformed, err)
	}
}

func (s *Server) reply(w io.Writer, resp Response) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := writeMessage(w, resp); err != nil {
		s.logf("write response id=%d: %v", resp.ID, err)
	}
}

// handle serves one request. A panic becomes a CodeInternal response, so no
// request can stop the agent.
func (s *Server) handle(ctx context.Context, req Request) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			s.logf("request id=%d op=%s: panic: %v", req.ID, req.Op, p)
			resp = failure(req.ID, CodeInternal, "panic: %v", p)
		}
	}()
	switch req.Op {
	case OpPing:
		info := s.info
		return Response{ID: req.ID, Info: &info}
	case OpRun, OpSpawn:
	default:
		return failure(req.ID, CodeBadRequest, "unknown op %q", req.Op)
	}
	if req.Session != s.info.Session {
		resp := failure(req.ID, CodeSession, "session %q is not this agent's (%s)",
			req.Session, s.info.Session)
		info := s.info
		resp.Info = &info
		return resp
	}
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return failure(req.ID, CodeBadRequest, "empty argv")
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return failure(req.ID, CodeBusy, "%d requests already running", cap(s.slots))
	}
	if req.Op == OpRun {
		return s.run(ctx, req)
	}
	return s.spawn(req)
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func failure(id uint64, code, format string, args ...any) Response {
	return Response{ID: id, ExitCode: -1, Error: &Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func newSession() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random session id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
