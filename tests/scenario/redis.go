package scenario

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/qemu"
)

// RedisPort is the port redis-server listens on in the guest.
const RedisPort = 6379

// RedisArgv starts redis-server in the foreground with the guest image's
// test configuration, without persistence, so that the process memory
// is the only copy of the data.
var RedisArgv = []string{"redis-server", "/etc/redis/redis.conf",
	"--daemonize", "no", "--save", "", "--appendonly", "no"}

// redisDir is the guest directory of the redis-server log.
const redisDir = "/var/tmp/ksu-redis"

// Redis is a redis-server that a test started in the guest.
type Redis struct {
	PID int
	Log string // stdout and stderr of redis-server
}

// StartRedis starts redis-server with RedisArgv through the guest agent,
// outside systemd, and waits until it replies to PING.
func StartRedis(ctx context.Context, g *qemu.Guest) (Redis, error) {
	if _, err := g.Output(ctx, "mkdir", "-p", redisDir); err != nil {
		return Redis{}, fmt.Errorf("start redis-server: %w", err)
	}
	p, err := g.SpawnCmd(ctx, qemu.Cmd{Argv: RedisArgv, Dir: redisDir, Log: redisDir + "/redis.log"})
	if err != nil {
		return Redis{}, fmt.Errorf("start redis-server: %w", err)
	}
	r := Redis{PID: p.PID, Log: p.Log}
	// Poll every 100 ms, at most 600 times (60 s), while the process lives.
	script := `i=0
while [ $i -lt 600 ]; do
	[ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ] && exit 0
	[ -d /proc/$2 ] || { echo "redis-server exited:"; cat "$3"; exit 1; } >&2
	sleep 0.1
	i=$((i + 1))
done
echo "redis-server does not reply to PING after 60 s" >&2
exit 1`
	_, err = g.Output(ctx, "sh", "-c", script, "sh", strconv.Itoa(RedisPort), strconv.Itoa(r.PID), r.Log)
	if err != nil {
		return r, fmt.Errorf("wait for redis-server pid %d: %w", r.PID, err)
	}
	return r, nil
}

// Populate runs DEBUG POPULATE in the guest to create keys keys of
// valueSize bytes each, named key:0, key:1 and so on, and returns
// used_memory from INFO memory afterwards, in bytes.
func (r Redis) Populate(ctx context.Context, g *qemu.Guest, keys, valueSize int) (int64, error) {
	out, err := r.cli(ctx, g, "DEBUG", "POPULATE", strconv.Itoa(keys), "key", strconv.Itoa(valueSize))
	if err != nil {
		return 0, err
	}
	if strings.TrimSpace(out) != "OK" {
		return 0, fmt.Errorf("DEBUG POPULATE %d key %d: reply %q, want OK", keys, valueSize, out)
	}
	out, err = r.cli(ctx, g, "INFO", "memory")
	if err != nil {
		return 0, err
	}
	used, err := RedisInfoField(out, "used_memory")
	if err != nil {
		return 0, fmt.Errorf("INFO memory of redis-server pid %d: %w", r.PID, err)
	}
	return strconv.ParseInt(used, 10, 64)
}

// cli runs redis-cli in the guest against r and returns its output.
func (r Redis) cli(ctx context.Context, g *qemu.Guest, args ...string) (string, error) {
	argv := append([]string{"redis-cli", "-p", strconv.Itoa(RedisPort)}, args...)
	out, err := g.Output(ctx, argv...)
	if err != nil {
		return "", fmt.Errorf("redis-cli for pid %d: %w", r.PID, err)
	}
	return string(out), nil
}

// RedisInfoField returns the value of name in the reply of INFO.
func RedisInfoField(info, name string) (string, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO has no field %s", name)
}

// GuestStep is one ksu command that ran in the guest.
type GuestStep struct {
	// Took is the time the host waited for the command.
	Took time.Duration
	// Output is the command's stdout and stderr.
	Output string
}

// DumpKill runs "ksu dump --kill" on the tree of pid in the guest, with
// the snapshot written to path, and waits until pid is gone.
func DumpKill(ctx context.Context, g *qemu.Guest, pid int, path string) (GuestStep, error) {
	if _, err := g.Output(ctx, "rm", "-f", path); err != nil {
		return GuestStep{}, err
	}
	step, err := runStep(ctx, g, GuestKSU, "dump", "--pid", strconv.Itoa(pid), "--out", path, "--kill")
	if err != nil {
		return step, err
	}
	// Poll every 20 ms, at most 1500 times (30 s).
	script := `i=0
while [ -d /proc/$1 ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i + 1)); done
[ ! -d /proc/$1 ] || { echo "pid $1 still exists 30 s after the dump" >&2; exit 1; }`
	if _, err := g.Output(ctx, "sh", "-c", script, "sh", strconv.Itoa(pid)); err != nil {
		return step, fmt.Errorf("wait for dumped pid %d to be gone: %w", pid, err)
	}
	return step, nil
}

// Restore runs "ksu restore --verbose path" in the guest.
func Restore(ctx context.Context, g *qemu.Guest, path string) (GuestStep, error) {
	return runStep(ctx, g, GuestKSU, "restore", "--verbose", path)
}

// redisStepTimeout bounds one ksu command in the guest.
const redisStepTimeout = 5 * time.Minute

// runStep runs argv in the guest and fails unless it exits 0.
func runStep(ctx context.Context, g *qemu.Guest, argv ...string) (GuestStep, error) {
	ctx, cancel := context.WithTimeout(ctx, redisStepTimeout)
	defer cancel()
	start := time.Now()
	res, err := g.Run(ctx, argv...)
	step := GuestStep{Took: time.Since(start), Output: strings.TrimSpace(string(res.Stdout) + string(res.Stderr))}
	if err != nil {
		return step, err
	}
	if res.ExitCode != 0 {
		return step, fmt.Errorf("%s in the guest: exit %d", strings.Join(argv, " "), res.ExitCode)
	}
	return step, nil
}

// GuestThreads lists the guest's threads with their state and wait
// channel, to show where a stuck command waits.
func GuestThreads(ctx context.Context, g *qemu.Guest) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	out, err := g.Output(ctx, "ps", "-eLo", "pid,tid,ppid,stat,wchan:32,comm")
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// FileSize returns the size in bytes of the guest file path.
func FileSize(ctx context.Context, g *qemu.Guest, path string) (int64, error) {
	out, err := g.Output(ctx, "stat", "-c", "%s", path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// ksuTookRE matches the duration at the end of the summary line of ksu
// dump and ksu restore ("... bytes of memory in 1.234s").
var ksuTookRE = regexp.MustCompile(`bytes of memory in (\S+)$`)

// KSUTook returns the duration that ksu dump or ksu restore printed in
// its summary line.
func (s GuestStep) KSUTook() (time.Duration, error) {
	for _, line := range strings.Split(s.Output, "\n") {
		if m := ksuTookRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			return time.ParseDuration(m[1])
		}
	}
	return 0, fmt.Errorf("no summary line in ksu output %q", s.Output)
}

// RedisKeys and RedisValueSize are how much the tests and the demo fill
// redis-server with: 200000 values of 512 bytes, about 137 MiB of
// used_memory.
const (
	RedisKeys      = 200000
	RedisValueSize = 512
)

// RedisMarker is the key that a RedisSession writes just before the
// server is dumped, to show that the last write before the pause
// survives it.
const RedisMarker = "ksu:marker"

// RedisState is what a client reads to compare the server before a dump
// and after the restore.
type RedisState struct {
	DBSize int64
	Digest string // DEBUG DIGEST of the whole data set
	PID    int    // process_id of INFO server
	RunID  string // run_id of INFO server, new on every start
}

// ReadRedisState reads DBSIZE, DEBUG DIGEST and INFO server on c.
func ReadRedisState(c *RedisClient) (RedisState, error) {
	var s RedisState
	var err error
	if s.DBSize, err = c.Int("DBSIZE"); err != nil {
		return s, err
	}
	if s.Digest, err = c.String("DEBUG", "DIGEST"); err != nil {
		return s, err
	}
	info, err := c.String("INFO", "server")
	if err != nil {
		return s, err
	}
	pid, err := RedisInfoField(info, "process_id")
	if err == nil {
		s.PID, err = strconv.Atoi(pid)
	}
	if err != nil {
		return s, fmt.Errorf("INFO server process_id: %w", err)
	}
	if s.RunID, err = RedisInfoField(info, "run_id"); err != nil {
		return s, err
	}
	return s, nil
}

// RedisSession is a loaded redis-server in the guest and a host client
// on one TCP connection to it, through the guest's forward of RedisPort.
type RedisSession struct {
	Server Redis
	Client *RedisClient
	// UsedMemory is used_memory after the server was filled, in bytes.
	UsedMemory int64
	// Before is the state read after the last SetMarker.
	Before RedisState
	// Marker is the value that the last SetMarker wrote.
	Marker string
}

// StartRedisSession starts redis-server in the guest, fills it with keys
// values of valueSize bytes and connects the host client. The caller
// closes s.Client.
func StartRedisSession(ctx context.Context, g *qemu.Guest, keys, valueSize int) (*RedisSession, error) {
	srv, err := StartRedis(ctx, g)
	if err != nil {
		return nil, err
	}
	used, err := srv.Populate(ctx, g, keys, valueSize)
	if err != nil {
		return nil, err
	}
	c, err := DialRedis(fmt.Sprintf("127.0.0.1:%d", g.HostPort(RedisPort)))
	if err != nil {
		return nil, err
	}
	s := &RedisSession{Server: srv, Client: c, UsedMemory: used}
	if s.Before, err = ReadRedisState(c); err != nil {
		c.Close()
		return nil, err
	}
	if s.Before.PID != srv.PID {
		c.Close()
		return nil, fmt.Errorf("INFO server process_id = %d, want the spawned pid %d", s.Before.PID, srv.PID)
	}
	if s.Before.DBSize != int64(keys) {
		c.Close()
		return nil, fmt.Errorf("DBSIZE = %d after DEBUG POPULATE %d, want %d", s.Before.DBSize, keys, keys)
	}
	return s, nil
}

// SetMarker writes value to RedisMarker and reads the state again.
func (s *RedisSession) SetMarker(value string) error {
	if _, err := s.Client.String("SET", RedisMarker, value); err != nil {
		return err
	}
	s.Marker = value
	var err error
	s.Before, err = ReadRedisState(s.Client)
	return err
}

// CheckPreserved checks, on the client's original connection, that the
// server holds the data it had at the last SetMarker, with the same PID
// and run_id, and that it takes a new write. It returns one error per
// difference.
func (s *RedisSession) CheckPreserved(ctx context.Context, g *qemu.Guest) error {
	after, err := ReadRedisState(s.Client)
	if err != nil {
		return err
	}
	var errs []error
	if after != s.Before {
		errs = append(errs, fmt.Errorf("server state = %+v, want %+v", after, s.Before))
	}
	if v, err := s.Client.String("GET", RedisMarker); err != nil || v != s.Marker {
		errs = append(errs, fmt.Errorf("GET %s = %q, %v, want %q", RedisMarker, v, err, s.Marker))
	}
	next := s.Marker + "+1"
	if _, err := s.Client.String("SET", RedisMarker, next); err != nil {
		errs = append(errs, fmt.Errorf("SET %s: %w", RedisMarker, err))
	}
	if v, err := s.Client.String("GET", RedisMarker); err != nil || v != next {
		errs = append(errs, fmt.Errorf("GET %s after a new write = %q, %v, want %q", RedisMarker, v, err, next))
	}
	comm, err := g.Output(ctx, "cat", fmt.Sprintf("/proc/%d/comm", s.Before.PID))
	if err != nil || strings.TrimSpace(string(comm)) != "redis-server" {
		errs = append(errs, fmt.Errorf("guest /proc/%d/comm = %q, %v, want redis-server", s.Before.PID, comm, err))
	}
	return errors.Join(errs...)
}

// RedisCounter and RedisLog are the keys that the write load of
// StartWrites increments and appends to.
const (
	RedisCounter = "ksu:counter"
	RedisLog     = "ksu:log"
)

// StartWrites deletes RedisCounter and RedisLog and starts writing to
// them on the client's connection: every 20 ms a pipeline of 4 writes,
// each an INCR of RedisCounter and an RPUSH of its number to RedisLog.
func (s *RedisSession) StartWrites() (*WriteLoad, error) {
	if _, err := s.Client.Int("DEL", RedisCounter, RedisLog); err != nil {
		return nil, fmt.Errorf("DEL %s %s: %w", RedisCounter, RedisLog, err)
	}
	return s.Client.StartWriteLoad(RedisCounter, RedisLog, 4, 20*time.Millisecond), nil
}

// CheckWrites checks on the client's connection that the server applied
// the writes of a stopped load exactly once and in order. RedisLog must
// contain 1 to K with no gap and no duplicate, RedisCounter must be K,
// and K must lie between the acknowledged and the sent writes. A write
// sent but not acknowledged may be present or absent, never twice. It
// then deletes both keys, so that CheckPreserved compares the data set
// that SetMarker read. It returns K.
func (s *RedisSession) CheckWrites(stats WriteStats) (int, error) {
	items, err := s.Client.Do("LRANGE", RedisLog, "0", "-1")
	if err != nil {
		return 0, fmt.Errorf("LRANGE %s: %w", RedisLog, err)
	}
	list, ok := items.([]any)
	if !ok {
		return 0, fmt.Errorf("LRANGE %s: reply %v (%T), want an array", RedisLog, items, items)
	}
	k := len(list)
	var errs []error
	if err := checkSequence(list); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", RedisLog, err))
	}
	if k < stats.Acked || k > stats.Sent {
		errs = append(errs, fmt.Errorf("%s contains %d writes, want between %d acknowledged and %d sent", RedisLog, k, stats.Acked, stats.Sent))
	}
	if v, err := s.Client.String("GET", RedisCounter); err != nil || v != strconv.Itoa(k) {
		errs = append(errs, fmt.Errorf("GET %s = %q, %v, want the list length %d", RedisCounter, v, err, k))
	}
	if _, err := s.Client.Int("DEL", RedisCounter, RedisLog); err != nil {
		errs = append(errs, fmt.Errorf("DEL %s %s: %w", RedisCounter, RedisLog, err))
	}
	return k, errors.Join(errs...)
}

// checkSequence checks that items are the strings "1", "2" and so on.
func checkSequence(items []any) error {
	for i, item := range items {
		if want := strconv.Itoa(i + 1); item != want {
			return fmt.Errorf("item %d of %d = %v, want %s", i, len(items), item, want)
		}
	}
	return nil
}

// RedisUpdate is what one kernel update under a RedisSession took.
type RedisUpdate struct {
	Switch Switch
	// Client is what the client's PINGs saw during the update, when it
	// sent PING (UpdateRedis).
	Client PauseStats
	// Writes is what the client's writes saw during the update, when it
	// wrote (UpdateRedisWriting).
	Writes *WriteStats
	// Report is ksu-init's report on the new kernel.
	Report Report
}

// UpdateRedis switches the guest to release to with "ksu update --pid"
// on the server of s while the client sends PING on its connection every
// 50 ms, and reads ksu-init's report. It fails when the connection
// breaks or the report lists a failure.
func UpdateRedis(ctx context.Context, g *qemu.Guest, s *RedisSession, to string) (RedisUpdate, error) {
	var u RedisUpdate
	watch := s.Client.WatchPauses(50 * time.Millisecond)
	sw, err := UpdateKernel(ctx, g, to, "--pid", strconv.Itoa(s.Server.PID))
	if err != nil {
		s.Client.Close() // ends the PING in flight, which gets no reply without a server
		watch.Stop()
		return u, err
	}
	u.Switch = sw
	u.Client, err = watch.Stop()
	if err != nil {
		return u, fmt.Errorf("client connection broke during the update: %w", err)
	}
	return u, u.readReport(ctx, g)
}

// UpdateRedisWriting switches the guest as UpdateRedis does, but the
// client writes on its connection all along (StartWrites) instead of
// sending PING, until the guest agent responds on the new kernel. ksu
// runs with --verbose, and u.Switch.LogFile names its trace. It fails
// when the connection breaks or a reply shows a write lost or applied
// twice. Check the server's copy with CheckWrites(*u.Writes).
func UpdateRedisWriting(ctx context.Context, g *qemu.Guest, s *RedisSession, to string) (RedisUpdate, error) {
	var u RedisUpdate
	load, err := s.StartWrites()
	if err != nil {
		return u, err
	}
	sw, err := UpdateKernel(ctx, g, to, "--pid", strconv.Itoa(s.Server.PID), "--verbose")
	if err != nil {
		s.Client.Close() // ends the batch in flight, which gets no reply without a server
		load.Stop()
		return u, err
	}
	u.Switch = sw
	stats, err := load.Stop()
	u.Writes = &stats
	if err != nil {
		return u, fmt.Errorf("writes during the update, %d of %d acknowledged: %w", stats.Acked, stats.Sent, err)
	}
	return u, u.readReport(ctx, g)
}

// readReport reads ksu-init's report into u and fails when it lists a
// failure.
func (u *RedisUpdate) readReport(ctx context.Context, g *qemu.Guest) error {
	var err error
	if u.Report, err = ReadReport(ctx, g); err != nil {
		return err
	}
	if len(u.Report.Failures) > 0 {
		return fmt.Errorf("restore failures in the report: %+v", u.Report.Failures)
	}
	return nil
}

// Summary formats the switch, the report's phase times, the pause that
// ksu-init measured and the pause that the client saw.
func (u RedisUpdate) Summary() string {
	var b strings.Builder
	b.WriteString(u.Switch.Report())
	fmt.Fprintf(&b, "report of ksu-init on %s: restored %v\n", u.Report.Kernel, u.Report.Restored)
	for _, p := range u.Report.Phases {
		fmt.Fprintf(&b, "  %-26s %8s  (started %s guest time)\n", "phase "+string(p.Phase),
			p.Duration.Round(time.Millisecond), p.Start.UTC().Format("15:04:05.000"))
		if p.Phase == phase.Resume {
			fmt.Fprintf(&b, "  %-26s %s guest time\n", "processes resumed at", p.Start.UTC().Format("15:04:05.000"))
		}
	}
	fmt.Fprintf(&b, "  %-26s %8s  (snapshot stamp to resume, guest clock)\n", "pause in the report",
		time.Duration(u.Report.Pause).Round(time.Millisecond))
	if w := u.Writes; w != nil {
		fmt.Fprintf(&b, "  %-26s %8s  (longest round trip of a batch of writes, sent at %s host time)\n",
			"pause the writer saw", w.MaxPause.Round(time.Millisecond), w.At.UTC().Format("15:04:05.000"))
		fmt.Fprintf(&b, "  %-26s %d acknowledged before the pause, %d in flight across it, %d after it (%d sent)\n",
			"writes", w.AckedBefore, w.AckedAcross, w.AckedAfter, w.Sent)
		return b.String()
	}
	fmt.Fprintf(&b, "  %-26s %8s  (longest PING round trip of %d, sent at %s host time)\n", "pause the client saw",
		u.Client.MaxPause.Round(time.Millisecond), u.Client.Pings, u.Client.At.UTC().Format("15:04:05.000"))
	return b.String()
}
