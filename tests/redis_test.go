package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

const (
	// redisKeys and redisValueSize fill redis-server with 200000 values
	// of 512 bytes, about 137 MiB of used_memory.
	redisKeys      = 200000
	redisValueSize = 512
	redisSnapshot  = "/root/redis.ksu"
	redisMarker    = "ksu:marker"
)

// TestRedisDumpRestore dumps and kills a loaded redis-server in the
// guest, restores it, and checks that a host client kept its one TCP
// connection: same data, same PID, and writes still work.
func TestRedisDumpRestore(t *testing.T) {
	// Limitation: the restore still fails (see the NOTE in
	// dumpRestoreRedis), and each failing run costs minutes of emulated
	// guest time, so the test runs only when asked for.
	if os.Getenv("KSU_TEST_KNOWN_FAILURES") == "" {
		t.Skip("skipping: known failure, ksu restore of redis-server fails with EADDRINUSE on its IPv4 listener; " +
			"set KSU_TEST_KNOWN_FAILURES=1 to run it")
	}
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

// redisState is what the client reads to compare the server before the
// dump and after the restore.
type redisState struct {
	dbsize int64
	digest string
	pid    int
	runID  string
}

func testRedisDumpRestore(t *testing.T, ctx context.Context, g *qemu.Guest) {
	srv := startLoadedRedis(t, ctx, g)
	c, err := scenario.DialRedis(fmt.Sprintf("127.0.0.1:%d", g.HostPort(scenario.RedisPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := readRedisState(t, c)
	if before.pid != srv.PID {
		t.Fatalf("INFO server process_id = %d, want the spawned pid %d", before.pid, srv.PID)
	}
	if before.dbsize != redisKeys {
		t.Fatalf("DBSIZE = %d, want %d", before.dbsize, redisKeys)
	}
	if _, err := c.String("SET", redisMarker, "before-dump"); err != nil {
		t.Fatal(err)
	}
	before.dbsize++

	watch := c.WatchPauses(50 * time.Millisecond)
	dumped, restored, err := dumpRestoreRedis(ctx, g, srv)
	if err != nil {
		c.Close() // ends the PING in flight, which gets no reply without a server
		watch.Stop()
		t.Fatalf("%v\nguest threads:\n%s", err, scenario.GuestThreads(ctx, g))
	}
	stats, werr := watch.Stop()
	if werr != nil {
		t.Fatalf("client connection broke during the dump and restore: %v", werr)
	}
	logRedisFigures(t, ctx, g, dumped, restored, stats)

	checkRedisRestored(t, ctx, g, c, before)
}

// startLoadedRedis starts redis-server in the guest and fills it.
func startLoadedRedis(t *testing.T, ctx context.Context, g *qemu.Guest) scenario.Redis {
	t.Helper()
	srv, err := scenario.StartRedis(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	used, err := srv.Populate(ctx, g, redisKeys, redisValueSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("redis-server pid %d holds %d keys, used_memory %.1f MiB (populated in %v)",
		srv.PID, redisKeys, float64(used)/(1<<20), time.Since(start).Round(time.Millisecond))
	if used < 100<<20 {
		t.Fatalf("used_memory = %d bytes, want at least 100 MiB", used)
	}
	return srv
}

// dumpRestoreRedis dumps and kills srv, then restores it.
func dumpRestoreRedis(ctx context.Context, g *qemu.Guest, srv scenario.Redis) (dumped, restored scenario.GuestStep, err error) {
	dumped, err = scenario.DumpKill(ctx, g, srv.PID, redisSnapshot)
	if err != nil {
		return dumped, restored, fmt.Errorf("dump redis-server pid %d: %w\n%s", srv.PID, err, dumped.Output)
	}
	// NOTE: on both 6.1 and 6.12 guests this restore still fails with
	// EADDRINUSE when it binds the IPv4 listener 0.0.0.0:6379, although
	// ss shows nothing on port 6379 after the dump; once it even hung
	// for 5 minutes in wait4 on the restored process instead.
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

// readRedisState reads DBSIZE, DEBUG DIGEST and INFO server on c.
func readRedisState(t *testing.T, c *scenario.RedisClient) redisState {
	t.Helper()
	var s redisState
	var err error
	if s.dbsize, err = c.Int("DBSIZE"); err != nil {
		t.Fatal(err)
	}
	if s.digest, err = c.String("DEBUG", "DIGEST"); err != nil {
		t.Fatal(err)
	}
	info, err := c.String("INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := scenario.RedisInfoField(info, "process_id")
	if err == nil {
		s.pid, err = strconv.Atoi(pid)
	}
	if err != nil {
		t.Fatalf("INFO server process_id: %v", err)
	}
	if s.runID, err = scenario.RedisInfoField(info, "run_id"); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkRedisRestored checks, on the client's original connection, that
// the restored server holds the data it had, and that it takes writes.
func checkRedisRestored(t *testing.T, ctx context.Context, g *qemu.Guest, c *scenario.RedisClient, before redisState) {
	after := readRedisState(t, c)
	if after.dbsize != before.dbsize {
		t.Errorf("DBSIZE after the restore = %d, want %d", after.dbsize, before.dbsize)
	}
	if after.digest != before.digest {
		t.Errorf("DEBUG DIGEST after the restore = %s, want %s", after.digest, before.digest)
	}
	if after.pid != before.pid {
		t.Errorf("INFO server process_id after the restore = %d, want %d", after.pid, before.pid)
	}
	if after.runID != before.runID {
		t.Errorf("INFO server run_id after the restore = %s, want %s", after.runID, before.runID)
	}
	if v, err := c.String("GET", redisMarker); err != nil || v != "before-dump" {
		t.Errorf("GET %s after the restore = %q, %v, want before-dump", redisMarker, v, err)
	}
	if _, err := c.String("SET", redisMarker, "after-restore"); err != nil {
		t.Errorf("SET %s after the restore: %v", redisMarker, err)
	}
	if v, err := c.String("GET", redisMarker); err != nil || v != "after-restore" {
		t.Errorf("GET %s after a new write = %q, %v, want after-restore", redisMarker, v, err)
	}
	comm, err := g.Output(ctx, "cat", fmt.Sprintf("/proc/%d/comm", before.pid))
	if err != nil || strings.TrimSpace(string(comm)) != "redis-server" {
		t.Errorf("guest /proc/%d/comm = %q, %v, want redis-server", before.pid, comm, err)
	}
}
