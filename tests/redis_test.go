package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// redisSnapshot is the guest file that ksu dump writes.
const redisSnapshot = "/root/redis.ksu"

// TestRedisDumpRestore dumps and kills a loaded redis-server in the
// guest, restores it, and checks that a host client kept its one TCP
// connection: same data, same PID, and writes still work.
func TestRedisDumpRestore(t *testing.T) {
	im := findImages(t)
	for _, rel := range []string{im.OldRelease, im.NewRelease} {
		t.Run(rel, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			g := bootGuest(t, ctx, im, rel, scenario.RedisPort)
			testRedisDumpRestore(t, ctx, g)
		})
	}
}

func testRedisDumpRestore(t *testing.T, ctx context.Context, g *qemu.Guest) {
	s := startRedisSession(t, ctx, g)
	if err := s.SetMarker("before-dump"); err != nil {
		t.Fatal(err)
	}

	watch := s.Client.WatchPauses(50 * time.Millisecond)
	dumped, restored, err := dumpRestoreRedis(ctx, g, s.Server)
	if err != nil {
		s.Client.Close() // ends the PING in flight, which gets no reply without a server
		watch.Stop()
		t.Fatalf("%v\nguest threads:\n%s", err, scenario.GuestThreads(ctx, g))
	}
	stats, werr := watch.Stop()
	if werr != nil {
		t.Fatalf("client connection broke during the dump and restore: %v", werr)
	}
	logRedisFigures(t, ctx, g, dumped, restored, stats)

	if err := s.CheckPreserved(ctx, g); err != nil {
		t.Errorf("after the restore, on the client's connection: %v", err)
	}
}

// TestRedisAcrossUpdate runs the redis scenario on each of the three
// updates: to the next major release, a stable update within the old
// release, and back from the new release to the old one.
func TestRedisAcrossUpdate(t *testing.T) {
	im := findImages(t)
	t.Run("major", func(t *testing.T) {
		testRedisUpdate(t, im, im.OldRelease, im.NewRelease, true)
	})
	t.Run("stable", func(t *testing.T) {
		stable := earlierStable(im)
		if stable == "" {
			t.Skipf("skipping: the images hold no other stable update of %s (EXTRA_KERNEL_PKGS in qemu/versions)", im.OldRelease)
		}
		testRedisUpdate(t, im, stable, im.OldRelease, false)
	})
	t.Run("back", func(t *testing.T) {
		testRedisUpdate(t, im, im.NewRelease, im.OldRelease, false)
	})
}

// testRedisUpdate switches a guest from release from to release to with
// ksu update while a host client keeps one connection open to a loaded
// redis-server through the port forward and writes on it all along. On
// that same connection the server must have every acknowledged write
// exactly once, the same data otherwise, the same PID and the write made
// just before the update, and must take a new write. With failFirst, a
// failing ksu update runs first, and its wait must end as soon as ksu
// exits.
func testRedisUpdate(t *testing.T, im scenario.Images, from, to string, failFirst bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, from, scenario.RedisPort)
	s := startRedisSession(t, ctx, g)
	if err := s.SetMarker("before-update"); err != nil {
		t.Fatal(err)
	}
	local := s.Client.LocalAddr().String()
	if failFirst {
		checkFailedUpdateEndsWait(t, ctx, g, s.Server.PID)
	}

	u, err := scenario.UpdateRedisWriting(ctx, g, s, to)
	if err != nil {
		logRestorer(t, g)
		t.Fatal(err)
	}
	t.Logf("client %s kept its connection across the update from %s\n%s", local, from, u.Summary())
	logGuestFile(t, ctx, g, "ksu update --verbose", u.Switch.LogFile)
	if u.Switch.To != to {
		t.Errorf("guest runs %s after the update, want %s", u.Switch.To, to)
	}
	if got := s.Client.LocalAddr().String(); got != local {
		t.Errorf("client address after the update = %s, want %s", got, local)
	}
	k, err := s.CheckWrites(*u.Writes)
	if err != nil {
		t.Errorf("after the update, on the client's connection: %v", err)
	}
	t.Logf("%s contains writes 1 to %d: %d acknowledged, %d sent", scenario.RedisLog, k, u.Writes.Acked, u.Writes.Sent)
	if err := s.CheckPreserved(ctx, g); err != nil {
		t.Errorf("after the update, on the client's connection: %v", err)
	}
}

// checkFailedUpdateEndsWait runs a ksu update that fails before the
// kexec, because its kernel does not exist, and checks that
// scenario.UpdateKernel returns as soon as ksu exits, not after its
// wait for the kexec.
func checkFailedUpdateEndsWait(t *testing.T, ctx context.Context, g *qemu.Guest, pid int) {
	t.Helper()
	const release = "no-such-release"
	start := time.Now()
	_, err := scenario.UpdateKernel(ctx, g, release, "--pid", strconv.Itoa(pid))
	took := time.Since(start)
	if !errors.Is(err, scenario.ErrUpdateExited) {
		t.Fatalf("UpdateKernel(%s) = %v, want an error wrapping %v", release, err, scenario.ErrUpdateExited)
	}
	if took > time.Minute {
		t.Errorf("UpdateKernel(%s) took %v, want it to return within a minute of starting", release, took.Round(time.Millisecond))
	}
	t.Logf("failed update returned after %v: %v", took.Round(time.Millisecond), err)
}

// startRedisSession starts a loaded redis-server in the guest and
// connects the host client; the test's cleanup closes the client.
func startRedisSession(t *testing.T, ctx context.Context, g *qemu.Guest) *scenario.RedisSession {
	t.Helper()
	start := time.Now()
	s, err := scenario.StartRedisSession(ctx, g, scenario.RedisKeys, scenario.RedisValueSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Client.Close() })
	t.Logf("redis-server pid %d holds %d keys, used_memory %.1f MiB (started and populated in %v)",
		s.Server.PID, scenario.RedisKeys, float64(s.UsedMemory)/(1<<20), time.Since(start).Round(time.Millisecond))
	if s.UsedMemory < 100<<20 {
		t.Fatalf("used_memory = %d bytes, want at least 100 MiB", s.UsedMemory)
	}
	return s
}

// dumpRestoreRedis dumps and kills srv, then restores it.
func dumpRestoreRedis(ctx context.Context, g *qemu.Guest, srv scenario.Redis) (dumped, restored scenario.GuestStep, err error) {
	dumped, err = scenario.DumpKill(ctx, g, srv.PID, redisSnapshot)
	if err != nil {
		return dumped, restored, fmt.Errorf("dump redis-server pid %d: %w\n%s", srv.PID, err, dumped.Output)
	}
	restored, err = scenario.Restore(ctx, g, redisSnapshot)
	if err != nil {
		return dumped, restored, fmt.Errorf("restore redis-server pid %d: %w\n%s", srv.PID, err, restored.Output)
	}
	return dumped, restored, nil
}

func logRedisFigures(t *testing.T, ctx context.Context, g *qemu.Guest, dumped, restored scenario.GuestStep, stats scenario.PauseStats) {
	t.Helper()
	size, err := scenario.FileSize(ctx, g, redisSnapshot)
	if err != nil {
		t.Error(err)
	}
	t.Logf("ksu dump: %s (host waited %v)", dumped.Output, dumped.Took.Round(time.Millisecond))
	t.Logf("ksu restore: %s (host waited %v)", restored.Output, restored.Took.Round(time.Millisecond))
	t.Logf("snapshot %s: %.1f MiB", redisSnapshot, float64(size)/(1<<20))
	t.Logf("client pause: longest PING round trip %v over %d PINGs",
		stats.MaxPause.Round(time.Millisecond), stats.Pings)
}

// logGuestFile logs the guest file path, or why it cannot be read.
func logGuestFile(t *testing.T, ctx context.Context, g *qemu.Guest, name, path string) {
	t.Helper()
	out, err := g.Output(ctx, "cat", path)
	if err != nil {
		t.Logf("%s: read %s: %v", name, path, err)
		return
	}
	t.Logf("%s (%s):\n%s", name, path, out)
}

// TestWriteLoadReplies runs a WriteLoad against an in-memory server on
// loopback and checks that it stops at the first write that the server
// applied twice.
func TestWriteLoadReplies(t *testing.T) {
	for _, tt := range []struct {
		name      string
		dupWrite  int // write whose RPUSH the server applies twice, or 0
		wait      int // list items to wait for before Stop
		wantAcked int // acknowledged writes when the load fails, or 0
	}{
		{name: "exactly once", wait: 8},
		// The first batch, writes 1 to 4, leaves 5 items and ends the load.
		{name: "write 3 applied twice", dupWrite: 3, wait: 5, wantAcked: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := startFakeRedis(t)
			srv.dupWrite = tt.dupWrite
			load := c.StartWriteLoad(scenario.RedisCounter, scenario.RedisLog, 4, time.Millisecond)
			srv.waitWrites(t, tt.wait)
			stats, err := load.Stop()
			if tt.dupWrite != 0 {
				if err == nil {
					t.Fatalf("WriteLoad.Stop() = nil error, want one for write %d", tt.dupWrite)
				}
				if want := fmt.Sprintf("write %d:", tt.dupWrite); !strings.Contains(err.Error(), want) {
					t.Errorf("WriteLoad.Stop() = %v, want an error about %q", err, want)
				}
				if stats.Acked != tt.wantAcked {
					t.Errorf("WriteLoad.Stop() acked = %d, want %d", stats.Acked, tt.wantAcked)
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteLoad.Stop() = %v, want nil error", err)
			}
			if stats.Acked != stats.Sent || stats.Acked < 8 {
				t.Errorf("WriteLoad.Stop() acked %d of %d sent, want all and at least 8", stats.Acked, stats.Sent)
			}
			if got := stats.AckedBefore + stats.AckedAcross + stats.AckedAfter; got != stats.Acked {
				t.Errorf("WriteLoad.Stop() before+across+after = %d, want acked %d", got, stats.Acked)
			}
			s := &scenario.RedisSession{Client: c}
			if k, err := s.CheckWrites(stats); err != nil || k != stats.Sent {
				t.Errorf("CheckWrites(%+v) = %d, %v, want %d, nil", stats, k, err, stats.Sent)
			}
		})
	}
}

// TestCheckWrites checks RedisSession.CheckWrites on server contents that
// a WriteLoad could not have seen in its replies.
func TestCheckWrites(t *testing.T) {
	for _, tt := range []struct {
		name    string
		list    []string
		counter int64
		stats   scenario.WriteStats
		wantK   int
		wantErr bool
	}{
		{"all sent present", []string{"1", "2", "3"}, 3, scenario.WriteStats{Sent: 3, Acked: 3}, 3, false},
		{"unacknowledged absent", []string{"1", "2"}, 2, scenario.WriteStats{Sent: 3, Acked: 2}, 2, false},
		{"acknowledged lost", []string{"1", "2"}, 2, scenario.WriteStats{Sent: 3, Acked: 3}, 2, true},
		{"duplicate", []string{"1", "2", "2"}, 3, scenario.WriteStats{Sent: 3, Acked: 2}, 3, true},
		{"gap", []string{"1", "3"}, 2, scenario.WriteStats{Sent: 3, Acked: 1}, 2, true},
		{"counter differs", []string{"1", "2"}, 3, scenario.WriteStats{Sent: 3, Acked: 2}, 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := startFakeRedis(t)
			srv.mu.Lock()
			srv.list, srv.counter = tt.list, tt.counter
			srv.mu.Unlock()
			s := &scenario.RedisSession{Client: c}
			k, err := s.CheckWrites(tt.stats)
			if k != tt.wantK {
				t.Errorf("CheckWrites(%+v) = %d, want %d", tt.stats, k, tt.wantK)
			}
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("CheckWrites(%+v) error = %v, want error %v", tt.stats, err, tt.wantErr)
			}
		})
	}
}

// fakeRedis serves INCR, RPUSH, LRANGE, GET and DEL from memory, with one
// counter and one list whatever the key, to test the write checks
// without a guest.
type fakeRedis struct {
	mu       sync.Mutex
	counter  int64
	list     []string
	dupWrite int // write whose RPUSH is applied twice, or 0
	changed  chan struct{}
}

// startFakeRedis serves a fakeRedis on a loopback listener and returns
// it with a client connected to it. The test's cleanup closes both.
func startFakeRedis(t *testing.T) (*fakeRedis, *scenario.RedisClient) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &fakeRedis{changed: make(chan struct{}, 1)}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		srv.serve(conn)
	}()
	c, err := scenario.DialRedis(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func (f *fakeRedis) serve(conn net.Conn) {
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		if _, err := io.WriteString(conn, f.apply(args)); err != nil {
			return
		}
	}
}

// apply runs one command and returns its RESP reply.
func (f *fakeRedis) apply(args []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}()
	switch strings.ToUpper(args[0]) {
	case "INCR":
		f.counter++
		return fmt.Sprintf(":%d\r\n", f.counter)
	case "RPUSH":
		f.list = append(f.list, args[2])
		if args[2] == strconv.Itoa(f.dupWrite) {
			f.list = append(f.list, args[2])
		}
		return fmt.Sprintf(":%d\r\n", len(f.list))
	case "LRANGE":
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(f.list))
		for _, v := range f.list {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(v), v)
		}
		return b.String()
	case "GET":
		v := strconv.FormatInt(f.counter, 10)
		return fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
	case "DEL":
		f.counter, f.list = 0, nil
		return ":2\r\n"
	}
	return "-ERR unknown command " + args[0] + "\r\n"
}

// waitWrites waits, for at most 10 s, until the list has n items.
func (f *fakeRedis) waitWrites(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.list)
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-f.changed:
		case <-timeout:
			t.Fatalf("fake redis list has %d items after 10 s, want %d", got, n)
		}
	}
}

// readCommand reads one RESP array of bulk strings, as clients send.
func readCommand(r *bufio.Reader) ([]string, error) {
	var n int
	if _, err := fmt.Fscanf(r, "*%d\r\n", &n); err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		var size int
		if _, err := fmt.Fscanf(r, "$%d\r\n", &size); err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}
