package tests

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// heldUnitName is the enabled service that TestUnitHeldAfterUpdate
// preserves.
const heldUnitName = "ksutest-redis.service"

// TestUnitHeldAfterUpdate preserves an enabled systemd service with
// Restart=always across a kernel update, selected with --unit. systemd
// must not start the unit a second time at boot. Once the boot has
// settled, the restored redis-server keeps its PID and data, the unit is
// inactive with its start skipped by ksu-init's condition, and the
// report lists the unit. The operator's steps to hand the service back
// to systemd must then start a fresh instance.
func TestUnitHeldAfterUpdate(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)

	logFile := "/var/log/" + strings.TrimSuffix(heldUnitName, ".service") + ".log"
	if err := scenario.InstallUnit(ctx, g, heldUnitName, scenario.RedisUnit(logFile)); err != nil {
		t.Fatal(err)
	}
	if err := scenario.WaitRedisPort(ctx, g, scenario.UnitRedisPort); err != nil {
		t.Fatal(err)
	}
	pid := unitMainPID(t, ctx, g)
	value := fmt.Sprintf("written-before-the-update-%d", time.Now().UnixNano())
	redisUnitCLI(t, ctx, g, "SET", "ksu:marker", value)
	if got := redisUnitCLI(t, ctx, g, "DEBUG", "POPULATE", "1000", "key", "64"); got != "OK" {
		t.Fatalf("DEBUG POPULATE 1000 key 64 = %q, want OK", got)
	}

	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--unit", heldUnitName)
	if err != nil {
		t.Fatalf("update to %s: %v", im.NewRelease, err)
	}
	t.Log(s.Report())
	state, err := scenario.WaitBootSettled(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("system state after the boot: %s", state)

	kept := t.Run("process kept", func(t *testing.T) { checkUnitProcessKept(t, ctx, g, pid, value) })
	t.Run("unit skipped", func(t *testing.T) { checkUnitSkipped(t, ctx, g, pid) })
	t.Run("report", func(t *testing.T) { checkUnitReport(t, ctx, g, pid) })
	if !kept {
		// After a failed restore or a second start, pid may name
		// another process, which the hand-back must not stop.
		t.Fatalf("skipping the hand-back: restored redis-server %d did not survive the boot", pid)
	}
	t.Run("hand back", func(t *testing.T) { checkUnitHandBack(t, ctx, g, pid) })
}

// checkUnitProcessKept checks that the restored redis-server pid still
// runs after the boot settled, alone on its port, with the data written
// before the update.
func checkUnitProcessKept(t *testing.T, ctx context.Context, g *qemu.Guest, pid int, value string) {
	comm, err := g.Output(ctx, "cat", fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatalf("restored redis-server %d is gone after the boot: %v", pid, err)
	}
	if got := strings.TrimSpace(string(comm)); got != "redis-server" {
		t.Errorf("comm of pid %d = %q, want redis-server", pid, got)
	}
	if got := redisUnitCLI(t, ctx, g, "GET", "ksu:marker"); got != value {
		t.Errorf("GET ksu:marker = %q, want %q", got, value)
	}
	if got := redisUnitCLI(t, ctx, g, "DBSIZE"); got != "1001" {
		t.Errorf("DBSIZE = %s, want 1001", got)
	}
	info := redisUnitCLI(t, ctx, g, "INFO", "server")
	if got, err := scenario.RedisInfoField(info, "process_id"); err != nil || got != strconv.Itoa(pid) {
		t.Errorf("INFO server process_id = %q (%v), want %d", got, err, pid)
	}
	out, err := g.Output(ctx, "pgrep", "-x", "redis-server")
	if err != nil {
		t.Fatalf("pgrep -x redis-server: %v", err)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{strconv.Itoa(pid)}) {
		t.Errorf("redis-server processes = %v, want only %d", got, pid)
	}
}

// checkUnitSkipped checks that systemd left the unit inactive, its start
// skipped by the condition, with the restored process in its cgroup, and
// never started a second instance.
func checkUnitSkipped(t *testing.T, ctx context.Context, g *qemu.Guest, pid int) {
	props, err := scenario.UnitProperties(ctx, g, heldUnitName,
		"ActiveState", "ConditionResult", "NRestarts", "ExecMainStartTimestampMonotonic", "ControlGroup")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"ActiveState":                     "inactive",
		"ConditionResult":                 "no",
		"NRestarts":                       "0",
		"ExecMainStartTimestampMonotonic": "0",
	} {
		if props[key] != want {
			t.Errorf("systemctl show %s: %s = %q, want %q", heldUnitName, key, props[key], want)
		}
	}
	cgroup, err := g.Output(ctx, "cat", fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0::/system.slice/" + heldUnitName + "\n"; string(cgroup) != want {
		t.Errorf("cgroup of pid %d = %q, want %q", pid, cgroup, want)
	}
	status, _ := g.Output(ctx, "systemctl", "status", "--no-pager", heldUnitName) // exits 3 when inactive
	t.Logf("systemctl status %s:\n%s", heldUnitName, status)
	journal, err := g.Output(ctx, "journalctl", "-b", "--no-pager", "-u", heldUnitName)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(journal), "left-over process") || strings.Contains(string(journal), "Started") {
		t.Errorf("journal of %s on this boot shows a start:\n%s", heldUnitName, journal)
	}
}

// checkUnitReport checks the units list of the report and of ksu status.
func checkUnitReport(t *testing.T, ctx context.Context, g *qemu.Guest, pid int) {
	units, err := scenario.ReadHeldUnits(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	want := []scenario.HeldUnit{{
		Name:   heldUnitName,
		Cgroup: "/system.slice/" + heldUnitName,
		PIDs:   []int32{int32(pid)},
		Marker: "/run/ksu/restored/" + heldUnitName,
		DropIn: "/run/systemd/system/" + heldUnitName + ".d/ksu-restored.conf",
	}}
	if !slices.EqualFunc(units, want, func(a, b scenario.HeldUnit) bool {
		return a.Name == b.Name && a.Cgroup == b.Cgroup && slices.Equal(a.PIDs, b.PIDs) && a.Marker == b.Marker && a.DropIn == b.DropIn
	}) {
		t.Errorf("report units = %+v, want %+v", units, want)
	}
	out, err := g.Output(ctx, "/usr/sbin/ksu", "status")
	if err != nil {
		t.Fatal(err)
	}
	if want := "held from systemd: " + heldUnitName; !strings.Contains(string(out), want) {
		t.Errorf("ksu status = %q, want it to contain %q", out, want)
	}
}

// checkUnitHandBack follows the steps that ksu status prints: stop the
// restored process, remove the marker, start the unit. systemd must then
// run a fresh redis-server under the unit.
func checkUnitHandBack(t *testing.T, ctx context.Context, g *qemu.Guest, pid int) {
	script := `[ "$(cat /proc/$1/comm)" = redis-server ] || { echo "pid $1 is not redis-server" >&2; exit 1; }
kill "$1"
i=0
while [ -d /proc/$1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -d /proc/$1 ] && { echo "pid $1 still runs 10 s after SIGTERM" >&2; exit 1; }
rm "$2" && systemctl start "$3"`
	if _, err := g.Output(ctx, "sh", "-c", script, "sh", strconv.Itoa(pid), "/run/ksu/restored/"+heldUnitName, heldUnitName); err != nil {
		t.Fatal(err)
	}
	if err := scenario.WaitRedisPort(ctx, g, scenario.UnitRedisPort); err != nil {
		t.Fatal(err)
	}
	props, err := scenario.UnitProperties(ctx, g, heldUnitName, "ActiveState", "MainPID")
	if err != nil {
		t.Fatal(err)
	}
	if props["ActiveState"] != "active" {
		t.Errorf("after the hand-back: ActiveState = %q, want active", props["ActiveState"])
	}
	if props["MainPID"] == "0" || props["MainPID"] == strconv.Itoa(pid) {
		t.Errorf("after the hand-back: MainPID = %s, want a new redis-server, not 0 or %d", props["MainPID"], pid)
	}
}

// unitMainPID returns the main process of heldUnitName.
func unitMainPID(t *testing.T, ctx context.Context, g *qemu.Guest) int {
	t.Helper()
	props, err := scenario.UnitProperties(ctx, g, heldUnitName, "MainPID")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(props["MainPID"])
	if err != nil || pid == 0 {
		t.Fatalf("MainPID of %s = %q, want a process", heldUnitName, props["MainPID"])
	}
	return pid
}

// redisUnitCLI runs redis-cli against the unit's redis-server and returns
// its reply.
func redisUnitCLI(t *testing.T, ctx context.Context, g *qemu.Guest, args ...string) string {
	t.Helper()
	out, err := scenario.RedisCLI(ctx, g, scenario.UnitRedisPort, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
