package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a connected unix stream socket, the
// same kind of byte stream QEMU's chardev socket gives the host.
func socketPair(t *testing.T) (host, guest net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatalf("net.FileConn: %v", err)
		}
	}
	return conns[0], conns[1]
}

// agentRun is one agent process serving a guest end. stop ends it the way a
// kexec ends the guest's agent: whatever it has not read is lost.
type agentRun struct {
	srv   *Server
	guest net.Conn
	done  chan error
	once  sync.Once
}

func startAgent(t *testing.T, guest net.Conn, maxRunning int) *agentRun {
	t.Helper()
	srv, err := NewServer(t.TempDir(), maxRunning)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv.Logf = t.Logf
	if err := guest.SetReadDeadline(time.Time{}); err != nil {
		t.Fatalf("clear read deadline: %v", err)
	}
	a := &agentRun{srv: srv, guest: guest, done: make(chan error, 1)}
	go func() { a.done <- srv.Serve(context.Background(), stoppableReader{guest}, guest) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agentRun) stop() {
	a.once.Do(func() {
		a.guest.SetReadDeadline(time.Now())
		<-a.done
	})
}

// stoppableReader turns the read deadline that agentRun.stop sets into EOF.
type stoppableReader struct{ c net.Conn }

func (r stoppableReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, io.EOF
	}
	return n, err
}

// newPair connects a Client to a fresh Server over a socket pair.
func newPair(t *testing.T, maxRunning int) (*Client, *agentRun) {
	t.Helper()
	host, guest := socketPair(t)
	a := startAgent(t, guest, maxRunning)
	c := NewClient(host)
	t.Cleanup(func() { c.Close() })
	return c, a
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestLineReader(t *testing.T) {
	for _, tt := range []struct {
		name  string
		input string
		max   int
		want  []string
	}{
		{"plain lines", "a\nbb\n", 10, []string{"a", "bb"}},
		{"empty lines skipped", "\n\na\n\n\nb\n", 10, []string{"a", "b"}},
		{"carriage return trimmed", "a\r\n", 10, []string{"a"}},
		{"unterminated tail dropped", "a\nfragment", 10, []string{"a"}},
		{"long line skipped", "a\n" + strings.Repeat("x", 11) + "\nb\n", 10, []string{"a", "<too long>", "b"}},
		{"line at max kept", strings.Repeat("y", 10) + "\n", 10, []string{strings.Repeat("y", 10)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lr := newLineReader(strings.NewReader(tt.input), tt.max)
			var got []string
			for range 100 {
				line, err := lr.next()
				if errors.Is(err, errLineTooLong) {
					got = append(got, "<too long>")
					continue
				}
				if err != nil {
					break
				}
				got = append(got, string(line))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines of %q mismatch (-want +got):\n%s", tt.input, diff)
			}
		})
	}
}

func TestLineReaderLongerThanBuffer(t *testing.T) {
	long := strings.Repeat("z", 200<<10)
	lr := newLineReader(strings.NewReader(long+"\nend\n"), 1<<20)
	line, err := lr.next()
	if err != nil || string(line) != long {
		t.Fatalf("next() = %d bytes, %v; want %d bytes, nil", len(line), err, len(long))
	}
	line, err = lr.next()
	if err != nil || string(line) != "end" {
		t.Fatalf("next() = %q, %v; want \"end\", nil", line, err)
	}
}

func TestPing(t *testing.T) {
	c, a := newPair(t, 0)
	got, err := c.Ping(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	if diff := cmp.Diff(a.srv.Info(), got); diff != "" {
		t.Errorf("Ping() mismatch (-want +got):\n%s", diff)
	}
	if got.Version != Version || got.PID != os.Getpid() || len(got.Session) != 16 {
		t.Errorf("Ping() = %+v, want version %d, pid %d, 16-digit session", got, Version, os.Getpid())
	}
}

func TestRun(t *testing.T) {
	c, _ := newPair(t, 0)
	for _, tt := range []struct {
		name     string
		req      Request
		want     Response
		wantCode string
	}{
		{
			name: "stdout",
			req:  Request{Argv: []string{"echo", "hello", "world"}},
			want: Response{Stdout: []byte("hello world\n")},
		},
		{
			name: "stderr and exit code",
			req:  Request{Argv: []string{"sh", "-c", "echo oops >&2; exit 3"}},
			want: Response{Stderr: []byte("oops\n"), ExitCode: 3},
		},
		{
			name: "killed by signal",
			req:  Request{Argv: []string{"sh", "-c", "kill -9 $$"}},
			want: Response{ExitCode: -1, Signal: 9},
		},
		{
			name: "stdin",
			req:  Request{Argv: []string{"cat"}, Stdin: []byte("from the host")},
			want: Response{Stdout: []byte("from the host")},
		},
		{
			name: "env and dir",
			req:  Request{Argv: []string{"sh", "-c", `echo "$KSU_X $PWD"`}, Env: []string{"KSU_X=1"}, Dir: "/"},
			want: Response{Stdout: []byte("1 /\n")},
		},
		{
			name:     "not found",
			req:      Request{Argv: []string{"/nonexistent/ksu-test"}},
			want:     Response{ExitCode: -1},
			wantCode: CodeStart,
		},
		{
			name:     "empty argv",
			req:      Request{},
			want:     Response{ExitCode: -1},
			wantCode: CodeBadRequest,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Op = OpRun
			got, err := c.Do(testContext(t, 10*time.Second), tt.req)
			checkCode(t, err, tt.wantCode)
			got.ID, got.Error = 0, nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Do(%q) mismatch (-want +got):\n%s", tt.req.Argv, diff)
			}
		})
	}
}

func checkCode(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Do() = %v, want nil error", err)
		}
		return
	}
	var aerr *Error
	if !errors.As(err, &aerr) || aerr.Code != want {
		t.Fatalf("Do() = %v, want an error with code %q", err, want)
	}
}

func TestRunTimeout(t *testing.T) {
	c, _ := newPair(t, 0)
	req := Request{Op: OpRun, Argv: []string{"sh", "-c", "echo before; sleep 30"}, TimeoutMS: 1000}
	start := time.Now()
	got, err := c.Do(testContext(t, 10*time.Second), req)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(%q) = %v, want ErrTimeout", req.Argv, err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Do(%q) took %s, want about 1s", req.Argv, elapsed)
	}
	if string(got.Stdout) != "before\n" || got.Signal != int(unix.SIGKILL) {
		t.Errorf("Do(%q) = stdout %q signal %d, want \"before\\n\" and SIGKILL",
			req.Argv, got.Stdout, got.Signal)
	}
}

func TestRunTimeoutFromContext(t *testing.T) {
	c, _ := newPair(t, 0)
	req := Request{Op: OpRun, Argv: []string{"sleep", "30"}}
	_, err := c.Do(testContext(t, 4*time.Second), req)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(%q) = %v, want ErrTimeout from the timeout derived from ctx", req.Argv, err)
	}
}

func TestRunTruncated(t *testing.T) {
	c, _ := newPair(t, 0)
	req := Request{Op: OpRun, Argv: []string{"head", "-c", "17000000", "/dev/zero"}}
	got, err := c.Do(testContext(t, 60*time.Second), req)
	if err != nil {
		t.Fatalf("Do(%q) = %v", req.Argv, err)
	}
	if len(got.Stdout) != MaxOutput || !got.Truncated || got.ExitCode != 0 {
		t.Errorf("Do(%q) = %d bytes, truncated %v, exit %d; want %d bytes, truncated, exit 0",
			req.Argv, len(got.Stdout), got.Truncated, got.ExitCode, MaxOutput)
	}
}

func TestRunBackgroundChildKeepsPipe(t *testing.T) {
	c, _ := newPair(t, 0)
	req := Request{Op: OpRun, Argv: []string{"sh", "-c", "sleep 30 & echo started"}}
	start := time.Now()
	got, err := c.Do(testContext(t, 20*time.Second), req)
	if err != nil {
		t.Fatalf("Do(%q) = %v", req.Argv, err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Do(%q) took %s, want about %s", req.Argv, elapsed, pipeGrace)
	}
	if string(got.Stdout) != "started\n" {
		t.Errorf("Do(%q) stdout = %q, want \"started\\n\"", req.Argv, got.Stdout)
	}
}

func TestSpawn(t *testing.T) {
	c, _ := newPair(t, 0)
	ctx := testContext(t, 10*time.Second)
	log := filepath.Join(t.TempDir(), "spawn.log")
	req := Request{Op: OpSpawn, Argv: []string{"sh", "-c", "echo $$; sleep 0.2; echo spawned-done"}, Log: log}
	got, err := c.Do(ctx, req)
	if err != nil {
		t.Fatalf("Do(%q) = %v", req.Argv, err)
	}
	if got.PID <= 0 || got.Log != log {
		t.Fatalf("Do(%q) = pid %d log %q, want a pid and log %q", req.Argv, got.PID, got.Log, log)
	}
	sid, err := unix.Getsid(got.PID)
	if err == nil && sid != got.PID {
		t.Errorf("session of spawned pid %d = %d, want its own", got.PID, sid)
	}
	want := "spawned-done"
	for range 100 {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(log)
	t.Errorf("spawn log %s = %q, want it to contain %q", log, b, want)
}

func TestSpawnDefaultLog(t *testing.T) {
	c, a := newPair(t, 0)
	got, err := c.Do(testContext(t, 10*time.Second), Request{Op: OpSpawn, Argv: []string{"true"}})
	if err != nil {
		t.Fatalf("Do(spawn true) = %v", err)
	}
	if filepath.Dir(got.Log) != a.srv.SpawnDir {
		t.Errorf("Do(spawn true) log = %q, want a file in %s", got.Log, a.srv.SpawnDir)
	}
}

// TestPingWhileRunning pings the agent while a "run" command blocks on a
// FIFO, and expects the ping's response before the command's.
func TestPingWhileRunning(t *testing.T) {
	c, _ := newPair(t, 0)
	ctx := testContext(t, 20*time.Second)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, Request{Op: OpRun, Argv: []string{"cat", fifo}})
		done <- err
	}()
	writer := openFIFOWriter(t, fifo)

	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("run of cat ended before the ping's response, with %v", err)
	default:
	}

	writer.Close()
	if err := <-done; err != nil {
		t.Errorf("Do(run cat) = %v after its FIFO closed", err)
	}
}

// openFIFOWriter opens fifo for writing once a reader has it open,
// which shows that the reader's command runs.
func openFIFOWriter(t *testing.T, fifo string) *os.File {
	t.Helper()
	for range 1000 {
		fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			f := os.NewFile(uintptr(fd), fifo)
			t.Cleanup(func() { f.Close() })
			return f
		}
		if !errors.Is(err, unix.ENXIO) {
			t.Fatalf("open %s for writing: %v", fifo, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no reader opened %s within 10s", fifo)
	return nil
}

func TestBusy(t *testing.T) {
	c, a := newPair(t, 1)
	a.srv.slots <- struct{}{} // the one slot is taken, as by a running command
	_, err := c.Do(testContext(t, 10*time.Second), Request{Op: OpRun, Argv: []string{"true"}})
	checkCode(t, err, CodeBusy)
	<-a.srv.slots
	_, err = c.Do(testContext(t, 10*time.Second), Request{Op: OpRun, Argv: []string{"true"}})
	checkCode(t, err, "")
}

func TestStaleSessionNotRun(t *testing.T) {
	c, _ := newPair(t, 0)
	ctx := testContext(t, 10*time.Second)
	marker := filepath.Join(t.TempDir(), "stale")
	resp, err := c.call(ctx, Request{Op: OpRun, Session: "0123456789abcdef", Argv: []string{"touch", marker}})
	if err != nil {
		t.Fatalf("call(stale session) = %v", err)
	}
	if resp.Error == nil || resp.Error.Code != CodeSession || resp.Info == nil {
		t.Fatalf("call(stale session) = %+v, want a %q error with info", resp, CodeSession)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("request with a stale session ran: %s exists", marker)
	}
}

func TestDoLearnsSession(t *testing.T) {
	c, a := newPair(t, 0)
	c.setSession("0123456789abcdef")
	if _, err := c.Do(testContext(t, 10*time.Second), Request{Op: OpRun, Argv: []string{"true"}}); err != nil {
		t.Fatalf("Do(true) with an old session = %v, want a retry with the new one", err)
	}
	if got, want := c.currentSession(), a.srv.Info().Session; got != want {
		t.Errorf("session after Do = %q, want %q", got, want)
	}
}

func TestServerSkipsGarbage(t *testing.T) {
	host, guest := socketPair(t)
	startAgent(t, guest, 0)
	if _, err := host.Write([]byte(`{"id":1,"op":"pi` + "\nnot json\n" + `{"id":2,"op":"dance"}` + "\n")); err != nil {
		t.Fatalf("write garbage: %v", err)
	}
	c := NewClient(host)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Ping(testContext(t, 10*time.Second)); err != nil {
		t.Fatalf("Ping() after garbage = %v", err)
	}
}

func TestClientSkipsGarbage(t *testing.T) {
	host, guest := socketPair(t)
	c := NewClient(host)
	t.Cleanup(func() { c.Close() })
	go func() {
		lr := newLineReader(guest, MaxLine)
		line, _ := lr.next()
		id := strings.TrimPrefix(strings.SplitN(string(line), ",", 2)[0], `{"id":`)
		guest.Write([]byte(`{"id":` + id + `,"info":{"vers` + "\n\n" + `{"id":999,"info":{}}` +
			"\n" + `{"id":` + id + `,"info":{"version":1,"session":"s1"}}` + "\n"))
	}()
	got, err := c.Ping(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	if got.Session != "s1" {
		t.Errorf("Ping() session = %q, want \"s1\"", got.Session)
	}
}

// TestAgentRestart replays a kexec: the agent dies with a request queued
// for it, a fragment sits in the stream, and a new agent takes the port.
func TestAgentRestart(t *testing.T) {
	host, guest := socketPair(t)
	c := NewClient(host)
	t.Cleanup(func() { c.Close() })
	first := startAgent(t, guest, 0)
	before, err := c.Ping(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Ping() to the first agent = %v", err)
	}
	first.stop()

	marker := filepath.Join(t.TempDir(), "stale")
	_, err = c.Do(testContext(t, 300*time.Millisecond), Request{Op: OpRun, Argv: []string{"touch", marker}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do(touch) with no agent = %v, want a deadline error", err)
	}
	host.SetWriteDeadline(time.Time{})
	if _, err := host.Write([]byte(`{"id":77,"op":"ru`)); err != nil {
		t.Fatalf("write fragment: %v", err)
	}

	second := startAgent(t, guest, 0)
	after, err := c.Ping(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Ping() to the second agent = %v", err)
	}
	if after.Session != second.srv.Info().Session || after.Session == before.Session {
		t.Errorf("Ping() session = %q, want the second agent's %q (first was %q)",
			after.Session, second.srv.Info().Session, before.Session)
	}
	got, err := c.Do(testContext(t, 10*time.Second), Request{Op: OpRun, Argv: []string{"echo", "ok"}})
	if err != nil || !bytes.Equal(got.Stdout, []byte("ok\n")) {
		t.Errorf("Do(echo ok) after restart = %q, %v; want \"ok\\n\", nil", got.Stdout, err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the second agent ran a request queued for the first: %s exists", marker)
	}
}

func TestClientClosed(t *testing.T) {
	host, guest := socketPair(t)
	c := NewClient(host)
	guest.Close() // the read loop may or may not have seen EOF when Ping writes
	_, err := c.Ping(testContext(t, 10*time.Second))
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Ping() on a closed connection = %v, want ErrClosed", err)
	}
	c.Close()
}

func TestRunTimeoutMargin(t *testing.T) {
	if got := runTimeout(context.Background()); got != DefaultTimeout {
		t.Errorf("runTimeout(no deadline) = %s, want %s", got, DefaultTimeout)
	}
	for _, tt := range []struct {
		left, want time.Duration
	}{
		{4 * time.Second, 3 * time.Second},
		{100 * time.Second, 95 * time.Second},
		{0, time.Millisecond},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), tt.left)
		got := runTimeout(ctx)
		cancel()
		if got > tt.want || got < tt.want-100*time.Millisecond {
			t.Errorf("runTimeout(%s left) = %s, want about %s", tt.left, got, tt.want)
		}
	}
}
