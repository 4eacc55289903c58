package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ksu-project/ksu/qemu"
)

// UnitRedisPort is the port of the redis-server that RedisUnit runs, apart
// from RedisPort so that it never meets a redis-server a test started by
// hand.
const UnitRedisPort = 6380

// RedisUnit returns an enabled service that runs redis-server on
// UnitRedisPort without persistence, so that its memory is the only copy
// of the data, and restarts it whenever it exits. Its output goes to a
// file, because the dump rejects a journal stream on stdout. DEBUG
// POPULATE is allowed from the guest itself.
func RedisUnit(logFile string) string {
	return `[Unit]
Description=redis-server on port ` + strconv.Itoa(UnitRedisPort) + ` for the ksu unit test

[Service]
ExecStart=/usr/bin/redis-server --port ` + strconv.Itoa(UnitRedisPort) + ` --save "" --appendonly no --daemonize no --enable-debug-command local
StandardOutput=append:` + logFile + `
StandardError=inherit
Restart=always

[Install]
WantedBy=multi-user.target
`
}

// InstallUnit writes the unit file /etc/systemd/system/NAME with content
// in the guest, enables and starts it.
func InstallUnit(ctx context.Context, g *qemu.Guest, name, content string) error {
	path := "/etc/systemd/system/" + name
	res, err := g.Exec(ctx, qemu.Cmd{Argv: []string{"sh", "-c", `cat > "$1"`, "sh", path}, Stdin: []byte(content)})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit status %d: %s", res.ExitCode, res.Stderr)
	}
	if err != nil {
		return fmt.Errorf("write %s in the guest: %w", path, err)
	}
	if _, err := g.Output(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	if _, err := g.Output(ctx, "systemctl", "enable", "--now", name); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	return nil
}

// UnitProperties returns the named properties of unit name, as systemctl
// show prints them.
func UnitProperties(ctx context.Context, g *qemu.Guest, name string, names ...string) (map[string]string, error) {
	argv := []string{"systemctl", "show", name}
	for _, n := range names {
		argv = append(argv, "--property", n)
	}
	out, err := g.Output(ctx, argv...)
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %w", name, err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	return props, nil
}

// RedisCLI runs redis-cli against port in the guest and returns its
// output without the trailing newline.
func RedisCLI(ctx context.Context, g *qemu.Guest, port int, args ...string) (string, error) {
	argv := append([]string{"redis-cli", "-p", strconv.Itoa(port)}, args...)
	out, err := g.Output(ctx, argv...)
	if err != nil {
		return "", fmt.Errorf("redis-cli -p %d %s: %w", port, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// WaitRedisPort waits until a redis-server replies to PING on port in the
// guest, at most 60 s.
func WaitRedisPort(ctx context.Context, g *qemu.Guest, port int) error {
	// Poll every 100 ms, at most 600 times.
	script := `i=0
while [ $i -lt 600 ]; do
	[ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ] && exit 0
	sleep 0.1
	i=$((i + 1))
done
echo "no redis-server replies to PING on port $1 after 60 s" >&2
exit 1`
	if _, err := g.Output(ctx, "sh", "-c", script, "sh", strconv.Itoa(port)); err != nil {
		return fmt.Errorf("wait for redis-server on port %d: %w", port, err)
	}
	return nil
}

// HeldUnit is a service that ksu-init kept systemd from starting, as
// /run/ksu/report.json lists it.
type HeldUnit struct {
	Name   string  `json:"name"`
	Cgroup string  `json:"cgroup"`
	PIDs   []int32 `json:"pids"`
	Marker string  `json:"marker"`
	DropIn string  `json:"drop_in"`
}

// ReadHeldUnits reads the units list of the guest's
// /run/ksu/report.json.
func ReadHeldUnits(ctx context.Context, g *qemu.Guest) ([]HeldUnit, error) {
	out, err := g.Output(ctx, "cat", "/run/ksu/report.json")
	if err != nil {
		return nil, fmt.Errorf("read the restore report: %w", err)
	}
	var r struct {
		Units []HeldUnit `json:"units"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("decode the restore report: %w", err)
	}
	return r.Units, nil
}

// WaitBootSettled waits until systemd's boot job queue is empty, at
// most 3 minutes, and returns the state that systemctl
// is-system-running prints ("running", or "degraded" when a unit
// failed).
func WaitBootSettled(ctx context.Context, g *qemu.Guest) (string, error) {
	// is-system-running exits non-zero for any state but running, so
	// its output is the result, and timeout bounds the wait.
	out, err := g.Output(ctx, "sh", "-c", "timeout 180 systemctl is-system-running --wait; true")
	state := strings.TrimSpace(string(out))
	if err != nil {
		return state, fmt.Errorf("wait for the boot to settle: %w", err)
	}
	if state == "starting" || state == "initializing" || state == "" {
		return state, fmt.Errorf("boot not settled after 3 minutes: state %q", state)
	}
	return state, nil
}
