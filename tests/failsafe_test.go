package tests

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/restore"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// snapshotDamage is one way to spoil the snapshot archive that the new
// kernel's initramfs carries.
type snapshotDamage struct {
	name   string
	damage func(t *testing.T, f *scenario.SnapshotFiles)
	// want matches the line ksu-init logs, on the console and in the
	// kernel log, and the reason in /run/ksu/report.json.
	want string
}

// snapshotDamages returns the cases; release is the kernel that boots
// the damaged archive.
func snapshotDamages(release string) []snapshotDamage {
	const unusable = `snapshot in /ksu is unusable, booting without restore: `
	const notRestored = `processes +not restored, booting without them: `
	return []snapshotDamage{
		{"missing header", func(t *testing.T, f *scenario.SnapshotFiles) { f.Header = nil },
			unusable + `archive header ksu/snapshot\.hdr is missing, but part ksu/snapshot\.000 is present`},
		{"truncated part", func(t *testing.T, f *scenario.SnapshotFiles) { f.Parts[1] = f.Parts[1][:100] },
			unusable + `.*snapshot\.001.*`},
		{"flipped byte", func(t *testing.T, f *scenario.SnapshotFiles) { f.Parts[2][10] ^= 0x04 },
			unusable + `.*payload CRC-32C`},
		{"newer major version", func(t *testing.T, f *scenario.SnapshotFiles) { f.Header[8] = snapshot.ArchiveVersion + 1 },
			unusable + `.*archive format version 2\.0 is not supported`},
		{"huge compressed size", func(t *testing.T, f *scenario.SnapshotFiles) {
			hdr := snapshot.ArchiveHeader{Version: snapshot.ArchiveVersion, KernelRelease: "6.1.0-test",
				CompressedSize: 1000 * snapshot.MaxPartSize, PartSize: snapshot.MaxPartSize, Parts: 1000}
			b, err := hdr.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary(%+v) = %v", hdr, err)
			}
			f.Header = b
		}, unusable + `.*snapshot\.000`},
		// NOTE: the restore does not pass the header's Size to
		// snapshot.ReaderOptions, so the claimed size goes unchecked and
		// the restore fails on the empty process list instead.
		{"huge decompressed size", func(t *testing.T, f *scenario.SnapshotFiles) {
			*f = newSnapshotFiles(t, 1<<62, metaOnlyStream(t, release))
		}, notRestored + `.*(stream is \d+ bytes, the archive header says 4611686018427387904|snapshot holds no process)`},
		{"payload not a snapshot", func(t *testing.T, f *scenario.SnapshotFiles) {
			*f = newSnapshotFiles(t, 0, randomPayload(5000))
		}, notRestored + `.*magic number mismatch`},
		{"empty part", func(t *testing.T, f *scenario.SnapshotFiles) {
			*f = newSnapshotFiles(t, 0, nil)
		}, notRestored + `.*stream ends 0 bytes into`},
		{"overlapping mappings", func(t *testing.T, f *scenario.SnapshotFiles) {
			*f = newSnapshotFiles(t, 0, snapshotStream(t, release, overlappingProcess()))
		}, `processes 4242 not restored, booting without them: invalid snapshot: process 4242: mapping 1 \[0x401000, 0x403000\) \(anon\): overlaps the mapping before it`},
	}
}

// overlappingProcess returns a well-formed process whose two mappings
// overlap, which the restore must reject before it creates any task.
func overlappingProcess() *snapshot.Process {
	return &snapshot.Process{PID: 4242, PPID: 1, PGID: 4242, SID: 4242,
		Threads: []snapshot.Thread{{TID: 4242}},
		MM: &snapshot.MM{VMAs: []snapshot.VMA{
			{Start: 0x400000, End: 0x402000, Prot: unix.PROT_READ, Kind: snapshot.VMAAnon},
			{Start: 0x401000, End: 0x403000, Prot: unix.PROT_READ, Kind: snapshot.VMAAnon},
		}},
	}
}

// metaOnlyStream returns a valid compressed snapshot stream that holds
// only its Meta, so that a reader gets to the end and checks the length.
func metaOnlyStream(t *testing.T, release string) []byte {
	return snapshotStream(t, release)
}

// snapshotStream returns a compressed snapshot stream of a Meta and procs.
// The Meta names release, so that the restore needs no vDSO image.
func snapshotStream(t *testing.T, release string, procs ...*snapshot.Process) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, snapshot.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Clocks an hour ahead of the new kernel's keep the restorer's time
	// namespace offsets positive.
	meta := &snapshot.Meta{KernelRelease: release, Machine: "x86_64", PageSize: 4096,
		Monotonic: time.Hour, Boottime: time.Hour, Time: time.Now()}
	if err := w.WriteMeta(meta); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if err := w.WriteProcess(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomPayload(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newSnapshotFiles(t *testing.T, size uint64, payload []byte) scenario.SnapshotFiles {
	t.Helper()
	hdr := snapshot.ArchiveHeader{KernelRelease: "6.1.0-test", Size: size}
	f, err := scenario.NewSnapshotFiles(hdr, payload, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestIntegrationBadSnapshotBoots boots the new kernel with an initramfs
// whose snapshot archive is damaged in one way per case. ksu-init must
// name the problem on the console and in the kernel log, record it in
// /run/ksu/report.json and start the real init.
func TestIntegrationBadSnapshotBoots(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, tt := range snapshotDamages(im.NewRelease) {
		t.Run(tt.name, func(t *testing.T) {
			files := newSnapshotFiles(t, 5000, randomPayload(5000))
			tt.damage(t, &files)
			archive, err := files.CPIO()
			if err != nil {
				t.Fatal(err)
			}
			testBadSnapshotBoot(t, ctx, im, archive, regexp.MustCompile(tt.want+`.*`))
		})
	}
}

func testBadSnapshotBoot(t *testing.T, ctx context.Context, im scenario.Images, archive []byte, want *regexp.Regexp) {
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	g, err := scenario.BootWithSnapshot(bctx, im, im.NewRelease, t.TempDir(), archive)
	if g != nil {
		defer g.Close()
	}
	if err != nil {
		if g != nil {
			t.Logf("guest console: %s", g.ConsoleLog())
		}
		t.Fatal(err)
	}
	t.Logf("guest agent answered %v after the start", time.Since(start).Round(time.Millisecond))

	console, err := os.ReadFile(g.ConsoleLog())
	if err != nil {
		t.Fatal(err)
	}
	if line := want.FindString(string(console)); line == "" {
		t.Errorf("console has no line matching %q; see %s", want, g.ConsoleLog())
	} else {
		t.Logf("console: %s", line)
	}
	for _, bad := range []string{"panic:", "fatal error:", "KSU-FATAL", "Kernel panic"} {
		if strings.Contains(string(console), bad) {
			t.Errorf("console contains %q; see %s", bad, g.ConsoleLog())
		}
	}
	if !strings.Contains(string(console), "KSU-PHASE handoff done") {
		t.Errorf("console has no handoff marker; see %s", g.ConsoleLog())
	}
	// ksu-init logs its first lines before the kernel log is open, then
	// writes them to it. The console must still show each of them once.
	const early = "ksu-init: stage early started"
	if n := strings.Count(string(console), early); n != 1 {
		t.Errorf("console has %d lines %q, want 1; see %s", n, early, g.ConsoleLog())
	}

	dmesg, err := g.Output(bctx, "dmesg")
	if err != nil {
		t.Fatal(err)
	}
	if !want.Match(dmesg) {
		t.Errorf("kernel log has no line matching %q", want)
	}
	if n := bytes.Count(dmesg, []byte(early)); n != 1 {
		t.Errorf("kernel log has %d lines %q, want 1", n, early)
	}

	rep, err := scenario.ReadReport(bctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Restored) != 0 {
		t.Errorf("report restored %v, want none", rep.Restored)
	}
	if len(rep.Failures) != 1 {
		t.Fatalf("report failures %+v, want one", rep.Failures)
	}
	// The report's reason is the error alone, without the log line's
	// prefix.
	_, reason, _ := strings.Cut(want.String(), ": ")
	if !regexp.MustCompile(reason).MatchString(rep.Failures[0].Reason) {
		t.Errorf("report failure reason %q, want a match for %q", rep.Failures[0].Reason, reason)
	}
}

// updateFault is one way to make ksu update fail before the kexec.
type updateFault struct {
	name   string
	env    []string // KSU_FAILPOINT, or nothing for a real fault
	kernel string   // --kernel; empty means the new release's bzImage
	// want matches ksu update's error output: the phase and the cause.
	want string
	// guard, if set, is the phase in which ksu update dies without
	// cleaning up, which the resume guard must then do.
	guard string
}

func updateFaults(newKernel string) []updateFault {
	failAt := func(name, phase string) updateFault {
		return updateFault{
			name: "failpoint " + name,
			env:  []string{"KSU_FAILPOINT=" + name},
			want: `phase ` + phase + `.*injected failure at failpoint "` + name + `"`,
		}
	}
	return []updateFault{
		failAt("freeze", "freeze and dump"),
		failAt("dump", "freeze and dump"),
		failAt("compress", "freeze and dump"),
		failAt("load", "load, kernel unloaded and processes resumed"),
		failAt("sync", "sync, filesystems thawed"),
		{name: "kernel not a kernel", kernel: "/etc/hostname", want: `phase check.*/etc/hostname: not an x86-64 bzImage`},
		{
			name: "panic at load", env: []string{"KSU_FAILPOINT=load:panic"},
			want: `panic: injected failure at failpoint "load"`, guard: "load",
		},
	}
}

// TestIntegrationUpdateFailsafe makes ksu update --pid fail at each phase
// boundary before the kexec, by a panic at one and by a SIGKILL at
// several of them, in one guest. Each update preserves a clock process and redis-server, which
// holds two TCP connections to clients outside the preserved trees: one
// from the host through the port forward, one from a guest process over
// loopback. Each time the preserved processes must run on, not stopped,
// the clock must pass its self-check, and both connections must carry
// data both ways with nothing lost. The root must be writable and no
// kexec kernel may stay loaded.
func TestIntegrationUpdateFailsafe(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease, scenario.RedisPort)
	const clockPath = "/usr/local/bin/ksu-clock"
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	peers := startTCPPeers(t, ctx, g)
	newKernel := "/boot/vmlinuz-" + im.NewRelease

	for i, tt := range updateFaults(newKernel) {
		t.Run(tt.name, func(t *testing.T) {
			clock := startClock(t, ctx, g, fmt.Sprintf("failsafe-%d", i), clockPath)
			defer peers.watch(t, tt.name)(t, ctx, g)
			testFailedUpdate(t, ctx, g, clock, cmp.Or(tt.kernel, newKernel), tt, peers.server())
		})
	}

	// A SIGKILL runs no cleanup in ksu, so its resume guard must do it.
	// The three inject points kill ksu inside the first call that the
	// dump injects (into redis or the clock): with the call's registers
	// set, at the call's entry and at its exit. The guard must then put
	// the thread's registers back. A kill at "freeze" hits the dump with
	// the processes traced. From "compress" on they are stopped by the
	// dump's SIGSTOP, with their connections in repair mode behind the
	// packet drop, from "load" on a kernel is loaded, and at "sync" the
	// root is frozen too.
	points := []string{ptrace.PointBorrowed, ptrace.PointEnter, ptrace.PointExit, "freeze", "compress", "load", "sync"}
	for _, point := range points {
		t.Run("ksu killed at "+point, func(t *testing.T) {
			defer peers.watch(t, "kill at "+point)(t, ctx, g)
			testKilledUpdate(t, ctx, g, clockPath, newKernel, point, peers.server())
		})
	}
}

// tcpPeers are the TCP connections to a preserved redis-server from two
// clients that are not preserved: the host's, through the guest's port
// forward, and a guest process's, over loopback. A failed update must
// take the server's ends out of repair mode and lift the packet drop, or
// the connections stay silent or get reset.
type tcpPeers struct {
	redis *scenario.RedisSession
	local *scenario.LocalClient
}

// startTCPPeers starts redis-server with a small data set, connects the
// host client and starts the guest client.
func startTCPPeers(t *testing.T, ctx context.Context, g *qemu.Guest) *tcpPeers {
	t.Helper()
	redis, err := scenario.StartRedisSession(ctx, g, 1000, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Client.Close() })
	// A request in flight waits out the failed update: up to 25 s in
	// runs under software emulation on a busy 2-core host. A connection
	// left in repair mode behind the packet drop never replies, and this
	// bounds the wait.
	redis.Client.Timeout = 2 * time.Minute
	const clientPath = "/usr/local/bin/ksu-local-client"
	if err := scenario.InstallProgram(ctx, g, t.TempDir(), clientPath, scenario.LocalClientSource); err != nil {
		t.Fatal(err)
	}
	local, err := scenario.StartLocalClient(ctx, g, "failsafe-local-client", clientPath, "ksu:local")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPeers{redis: redis, local: local}
	if err := local.RoundTrip(ctx, g, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("redis-server %d: host client on %v, guest client %d on port %d", redis.Server.PID,
		redis.Client.LocalAddr(), local.PID, local.Port)
	return p
}

// server returns the preserved redis-server as a Preserved, for its pid.
func (p *tcpPeers) server() scenario.Preserved {
	return scenario.Preserved{PID: p.redis.Server.PID, Log: p.redis.Server.Log}
}

// watch writes a marker named name and starts sending PING on the host
// connection every 200 ms, so that requests are in flight while the
// update holds the connection. The returned check, to defer until the
// failed update is over, stops the PINGs and checks both connections.
func (p *tcpPeers) watch(t *testing.T, name string) func(*testing.T, context.Context, *qemu.Guest) {
	t.Helper()
	if err := p.redis.SetMarker(name); err != nil {
		t.Fatalf("host connection before the update: %v", err)
	}
	pings := p.redis.Client.WatchPauses(200 * time.Millisecond)
	return func(t *testing.T, ctx context.Context, g *qemu.Guest) {
		t.Helper()
		stats, err := pings.Stop()
		if err != nil {
			t.Errorf("host connection broke during the failed update, after %d PINGs: %v", stats.Pings, err)
		} else {
			t.Logf("host connection: %d PINGs, longest round trip %v", stats.Pings, stats.MaxPause.Round(time.Millisecond))
		}
		if err := p.redis.CheckPreserved(ctx, g); err != nil {
			t.Errorf("host connection after the failed update: %v", err)
		}
		if err := p.local.RoundTrip(ctx, g, 30*time.Second); err != nil {
			t.Errorf("guest connection after the failed update: %v", err)
		}
		if t.Failed() {
			logRedisSockets(t, ctx, g)
		}
	}
}

// logRedisSockets logs the guest's TCP sockets on RedisPort with their
// timers and internal state, to show why a connection is silent.
func logRedisSockets(t *testing.T, ctx context.Context, g *qemu.Guest) {
	t.Helper()
	out, err := g.Output(ctx, "ss", "-tnieo", "state", "all", "( sport = :"+strconv.Itoa(scenario.RedisPort)+" )")
	if err != nil {
		t.Logf("list the guest's sockets on port %d: %v", scenario.RedisPort, err)
		return
	}
	t.Logf("guest sockets on port %d:\n%s", scenario.RedisPort, out)
	out, err = g.Output(ctx, "sh", "-c", "nstat -az | grep -Ei 'abort|reset|rst'; dmesg | tail -n 30")
	if err != nil {
		t.Logf("read the guest's TCP counters and kernel log: %v", err)
		return
	}
	t.Logf("guest TCP abort and reset counters, and the end of the kernel log:\n%s", out)
}

// testFailedUpdate runs ksu update on clock and the trees of others with
// fault f, checks its error and checks that nothing changed.
func testFailedUpdate(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved, kernel string, f updateFault, others ...scenario.Preserved) {
	argv := updateArgv(kernel, clock, others)
	from := g.Mark()
	res, err := g.Exec(ctx, qemu.Cmd{Argv: argv, Env: f.env})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu update: exit %d, stderr: %s", res.ExitCode, bytes.TrimSpace(res.Stderr))
	if res.ExitCode == 0 {
		t.Errorf("ksu update with %v exited 0, want a failure", f.env)
	}
	if !regexp.MustCompile(f.want).Match(res.Stderr) {
		t.Errorf("ksu update stderr %q, want a match for %q", res.Stderr, f.want)
	}
	if f.guard != "" {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		guardRE := regexp.MustCompile(`resume guard: ksu update exited .* in phase ` + f.guard +
			`, before the kexec, without cleaning up; thawed filesystems, unloaded any kexec kernel, resumed`)
		line, err := g.WaitConsoleFrom(wctx, from, guardRE)
		if err != nil {
			t.Fatalf("console has no line matching %q: %v", guardRE, err)
		}
		t.Logf("console: %s", line.Text)
	}
	checkNothingChanged(t, ctx, g, clock, others...)
}

// updateArgv returns the command line of ksu update to kernel that
// preserves clock and others.
func updateArgv(kernel string, clock scenario.Preserved, others []scenario.Preserved) []string {
	argv := []string{"/usr/sbin/ksu", "update", "--kernel", kernel, "--yes", "--pid", strconv.Itoa(clock.PID)}
	for _, p := range others {
		argv = append(argv, "--pid", strconv.Itoa(p.PID))
	}
	return argv
}

// testKilledUpdate pauses ksu update at failpoint point, kills it with
// SIGKILL and checks that nothing changed.
func testKilledUpdate(t *testing.T, ctx context.Context, g *qemu.Guest, clockPath, kernel, point string, others ...scenario.Preserved) {
	clock := startClock(t, ctx, g, "failsafe-kill-"+point, clockPath)
	argv := updateArgv(kernel, clock, others)
	from := g.Mark()
	p, err := g.SpawnCmd(ctx, qemu.Cmd{Argv: argv, Env: []string{"KSU_FAILPOINT=" + point + ":pause"}})
	if err != nil {
		t.Fatal(err)
	}
	// The failpoint logs to the kernel log, which the console shows,
	// because at "sync" a write to the spawn log would block.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pauseRE := regexp.MustCompile(`failpoint ` + point + `: pausing for \S+, pid (\d+)`)
	pauseLine, err := g.WaitConsoleFrom(wctx, from, pauseRE)
	if err != nil {
		t.Fatalf("wait for ksu update to pause at %s: %v", point, err)
	}
	t.Logf("console: %s", pauseLine.Text)
	ksuPID, err := strconv.Atoi(pauseRE.FindStringSubmatch(pauseLine.Text)[1])
	if err != nil {
		t.Fatalf("parse ksu's pid in %q: %v", pauseLine.Text, err)
	}

	state, err := scenario.ProcessState(ctx, g, clock.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("process %d state while ksu %d pauses at %s: %c", clock.PID, ksuPID, point, state)
	if state != 't' && state != 'T' {
		t.Errorf("process %d state %c while ksu pauses at %s, want it stopped (t or T)", clock.PID, state, point)
	}
	res, err := g.Run(ctx, "kill", "-KILL", strconv.Itoa(ksuPID))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("kill -KILL %d: %s", ksuPID, res.Stderr)
	}

	guardLine, err := waitGuestLog(ctx, g, p.Log, "resume guard:", 30*time.Second)
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("ksu update: %s", guardLine)
	}
	// The guard names the phase ksu update last entered, and the thread
	// if ksu died in a call injected into it.
	phase := "freeze and dump"
	if point == "load" || point == "sync" {
		phase = point
	}
	if want := "in phase " + phase + ", before the kexec"; err == nil && !strings.Contains(guardLine, want) {
		t.Errorf("guard line %q, want it to contain %q", guardLine, want)
	}
	undone := regexp.MustCompile(`gave threads \[\d+\] back the registers`)
	if err == nil && strings.HasPrefix(point, "inject-") && !undone.MatchString(guardLine) {
		t.Errorf("guard line %q, want a match for %q", guardLine, undone)
	}
	checkNothingChanged(t, ctx, g, clock, others...)
}

// startClock starts the clock program as a preserved workload named name
// and waits for its first sample.
func startClock(t *testing.T, ctx context.Context, g *qemu.Guest, name, path string) scenario.Preserved {
	t.Helper()
	clock, err := scenario.StartWorkload(ctx, g, name, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clock.WaitLog(ctx, g, time.Minute, "clock"); err != nil {
		t.Fatal(err)
	}
	return clock
}

// checkNothingChanged checks, after a failed ksu update, that clock and
// others run, that clock passes its check, that the root disk is
// writable and that no kexec kernel is loaded.
func checkNothingChanged(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved, others ...scenario.Preserved) {
	t.Helper()
	for _, p := range append([]scenario.Preserved{clock}, others...) {
		state, err := scenario.WaitNotStopped(ctx, g, p.PID, 5*time.Second)
		if err != nil {
			t.Errorf("after the failed update: %v", err)
		} else {
			t.Logf("process %d state after the failed update: %c", p.PID, state)
		}
	}
	checkClockAdvances(t, ctx, g, clock)
	if err := scenario.CheckRootWritable(ctx, g); err != nil {
		t.Errorf("after the failed update: %v", err)
	}
	out, err := g.Output(ctx, "cat", "/sys/kernel/kexec_loaded")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "0" {
		t.Errorf("/sys/kernel/kexec_loaded = %s after the failed update, want 0", got)
	}
	verdict, err := clock.Check(ctx, g)
	if err != nil {
		t.Errorf("check process %d: %v", clock.PID, err)
	} else if verdict != "PASS" {
		t.Errorf("process %d: verdict %q, want PASS", clock.PID, verdict)
	}
}

// checkClockAdvances checks that the clock program logs a newer sample
// within a few seconds, which it does only while it runs.
func checkClockAdvances(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved) {
	t.Helper()
	lastSample := func() int64 {
		out, err := g.Output(ctx, "cat", clock.Log)
		if err != nil {
			t.Fatal(err)
		}
		mono, _, err := scenario.LastClock(string(out))
		if err != nil {
			t.Fatal(err)
		}
		return mono
	}
	before := lastSample()
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		if lastSample() > before {
			return
		}
	}
	t.Errorf("process %d logged no clock sample newer than %v in 10 s: it does not run", clock.PID, time.Duration(before))
}

// waitGuestLog polls the guest file path for at most d until it contains
// substr, and returns the line that does.
func waitGuestLog(ctx context.Context, g *qemu.Guest, path, substr string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		out, err := g.Output(ctx, "cat", path)
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, substr) {
				return line, nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return "", fmt.Errorf("no line containing %q in %s after %v", substr, path, d)
}

// TestIntegrationTreeFailure preserves two clock processes as separate
// trees and makes the restore of the second fail on the new kernel with
// the failpoint restore.FailpointPrefix+PID. The first must run on and
// pass its check; the second must be killed and reaped, and the
// report and ksu status must name its tree and the reason.
func TestIntegrationTreeFailure(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	const clockPath = "/usr/local/bin/ksu-clock"
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	kept := startClock(t, ctx, g, "tree-kept", clockPath)
	failed := startClock(t, ctx, g, "tree-failed", clockPath)
	point := fmt.Sprint(restore.FailpointPrefix, failed.PID)

	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--pid", strconv.Itoa(kept.PID), "--pid", strconv.Itoa(failed.PID),
		"--append", failpoint.EnvVar+"="+point)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())

	rep, err := scenario.ReadReport(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: restored %v, failures %+v", rep.Restored, rep.Failures)
	if diff := gocmp.Diff([]int32{int32(kept.PID)}, rep.Restored); diff != "" {
		t.Errorf("report restored mismatch (-want +got):\n%s", diff)
	}
	checkTreeFailure(t, ctx, g, failed.PID, point)

	if err := kept.Alive(ctx, g, clockPath); err != nil {
		t.Errorf("after the update: %v", err)
	}
	checkClockAdvances(t, ctx, g, kept)
	if verdict, err := kept.Check(ctx, g); err != nil {
		t.Errorf("check process %d: %v", kept.PID, err)
	} else if verdict != "PASS" {
		t.Errorf("process %d: verdict %q, want PASS", kept.PID, verdict)
	}
	if err := scenario.CheckNotRunning(ctx, g, failed.PID, clockPath); err != nil {
		t.Errorf("after its tree failed: %v", err)
	}
	console, err := os.ReadFile(g.ConsoleLog())
	if err != nil {
		t.Fatal(err)
	}
	removing := fmt.Sprintf("removing process tree %d (ksu-clock)", failed.PID)
	if !strings.Contains(string(console), removing) {
		t.Errorf("console has no line containing %q; see %s", removing, g.ConsoleLog())
	}
	if strings.Contains(string(console), "still present") {
		t.Errorf("console says tasks of the failed tree were not reaped; see %s", g.ConsoleLog())
	}
}

// checkTreeFailure checks that the report and ksu status name the tree
// of root as not restored, with the injected failure as the reason.
func checkTreeFailure(t *testing.T, ctx context.Context, g *qemu.Guest, root int, point string) {
	t.Helper()
	failures, err := scenario.ReadTreeFailures(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	want := []scenario.TreeFailure{{Root: int32(root), Comm: "ksu-clock", PIDs: []int32{int32(root)}}}
	if diff := gocmp.Diff(want, failures, cmpopts.IgnoreFields(scenario.TreeFailure{}, "Reason")); diff != "" {
		t.Errorf("report failures mismatch (-want +got):\n%s", diff)
	}
	wantReason := fmt.Sprintf(`process tree %d (ksu-clock): restore process %d: injected failure at failpoint %q`, root, root, point)
	for _, f := range failures {
		if !strings.Contains(f.Reason, wantReason) {
			t.Errorf("report failure reason %q, want it to contain %q", f.Reason, wantReason)
		}
	}
	res, err := scenario.RunKSU(ctx, g, time.Minute, "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stdout, wantReason) {
		t.Errorf("ksu status output %q, want it to contain %q", res.Stdout, wantReason)
	}
}
