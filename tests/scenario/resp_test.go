package scenario

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadReply(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"-ERR unknown command\r\n", RedisError("ERR unknown command")},
		{":200001\r\n", int64(200001)},
		{":-3\r\n", int64(-3)},
		{"$5\r\nhello\r\n", "hello"},
		{"$0\r\n\r\n", ""},
		{"$4\r\na\r\nb\r\n", "a\r\nb"},
		{"$-1\r\n", nil},
		{"*-1\r\n", nil},
		{"*0\r\n", []any{}},
		{"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+y\r\n", []any{int64(1), "x", []any{"y"}}},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)))
		if err != nil {
			t.Errorf("readReply(%q) = %v, want nil error", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("readReply(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestReadReplyInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"+OK\n",
		"?x\r\n",
		":12a\r\n",
		"$5\r\nhi\r\n",
		"$2\r\nhiXY",
		"$-2\r\n",
		"$999999999999\r\n",
		"*2\r\n:1\r\n",
	} {
		if got, err := readReply(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readReply(%q) = %v, nil, want an error", in, got)
		}
	}
}

func TestEncodeCommand(t *testing.T) {
	got := string(encodeCommand([]string{"SET", "k", ""}))
	want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
	if got != want {
		t.Errorf("encodeCommand(SET k \"\") = %q, want %q", got, want)
	}
}

// fakeServer replies to each command read from conn with the next reply in
// replies, then closes conn.
func fakeServer(t *testing.T, conn net.Conn, replies ...string) {
	t.Helper()
	go func() {
		defer conn.Close()
		r := bufio.NewReader(conn)
		for _, reply := range replies {
			if _, err := readReply(r); err != nil {
				return
			}
			if _, err := io.WriteString(conn, reply); err != nil {
				return
			}
		}
	}()
}

func TestRedisClientKeepsErrorReplyApart(t *testing.T) {
	server, client := net.Pipe()
	fakeServer(t, server, "-ERR wrong type\r\n", ":7\r\n")
	c := NewRedisClient(client)
	defer c.Close()

	_, err := c.Do("INCR", "s")
	var redisErr RedisError
	if !errors.As(err, &redisErr) {
		t.Fatalf("Do(INCR s) = %v, want a RedisError", err)
	}
	if n, err := c.Int("DBSIZE"); err != nil || n != 7 {
		t.Errorf("Int(DBSIZE) after an error reply = %d, %v, want 7, nil", n, err)
	}
}

func TestRedisClientBreaksOnClose(t *testing.T) {
	server, client := net.Pipe()
	fakeServer(t, server, "+PONG\r\n")
	c := NewRedisClient(client)
	defer c.Close()

	if s, err := c.String("PING"); err != nil || s != "PONG" {
		t.Fatalf("String(PING) = %q, %v, want PONG, nil", s, err)
	}
	_, err := c.Do("PING")
	if err == nil {
		t.Fatalf("Do(PING) after the server closed = nil error, want one")
	}
	if _, again := c.Do("PING"); !errors.Is(again, err) {
		t.Errorf("Do(PING) on a broken connection = %v, want %v", again, err)
	}
}

func TestPauseWatchReportsBrokenConnection(t *testing.T) {
	server, client := net.Pipe()
	fakeServer(t, server, "+PONG\r\n", "+PONG\r\n")
	c := NewRedisClient(client)
	defer c.Close()

	w := c.WatchPauses(time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		broken := c.broken
		c.mu.Unlock()
		if broken != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stats, err := w.Stop()
	if err == nil {
		t.Fatalf("PauseWatch.Stop() after the server closed = nil error, want one")
	}
	if stats.Pings != 2 {
		t.Errorf("PauseWatch.Stop() pings = %d, want 2", stats.Pings)
	}
}
