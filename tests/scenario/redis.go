package scenario

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

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

// Restore runs "ksu restore -v path" in the guest.
func Restore(ctx context.Context, g *qemu.Guest, path string) (GuestStep, error) {
	return runStep(ctx, g, GuestKSU, "restore", "-v", path)
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
