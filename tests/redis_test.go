package tests

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// TestRedisAcrossUpdate switches the guest to the new release with ksu
// update while a host client holds one connection to a loaded
// redis-server through the port forward and writes on it all along. On
// that same connection the server must have every acknowledged write
// exactly once, the same data otherwise, the same PID and the write made
// just before the update, and must take a new write. A failing ksu
// update runs first, and its wait must end as soon as ksu exits.
func TestRedisAcrossUpdate(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease, scenario.RedisPort)
	s := startRedisSession(t, ctx, g)
	if err := s.SetMarker("before-update"); err != nil {
		t.Fatal(err)
	}
	local := s.Client.LocalAddr().String()
	checkFailedUpdateEndsWait(t, ctx, g, s.Server.PID)

	u, err := scenario.UpdateRedisWriting(ctx, g, s, im.NewRelease)
	if err != nil {
		logRestorer(t, g)
		t.Fatal(err)
	}
	t.Logf("client %s kept its connection across the update\n%s", local, u.Summary())
	logGuestFile(t, ctx, g, "ksu update --verbose", u.Switch.LogFile)
	if u.Switch.To != im.NewRelease {
		t.Errorf("guest runs %s after the update, want %s", u.Switch.To, im.NewRelease)
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
