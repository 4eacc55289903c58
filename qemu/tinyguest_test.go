package qemu

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestIntegrationTinyGuest boots each kernel of KSU_TEST_KERNELS with the
// testinit initramfs and drives it: console, agent, QMP, an agent restart,
// a kexec, and a power-off.
func TestIntegrationTinyGuest(t *testing.T) {
	for _, k := range testKernels(t) {
		t.Run(k.release, func(t *testing.T) {
			testTinyGuest(t, k)
		})
	}
}

func testTinyGuest(t *testing.T, k testKernel) {
	initrd := buildTinyInitramfs(t, k)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	g := StartT(t, Config{
		Kernel:   k.vmlinuz,
		Initrd:   initrd,
		Cmdline:  "ksu.testinit=agent",
		MemoryMB: 512,
	})

	start, err := g.WaitConsole(ctx, regexp.MustCompile(`KSU-TESTINIT start gen=1`))
	if err != nil {
		t.Fatal(err)
	}
	info, err := g.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot: init at %s, agent answered at %s (accel %s)",
		start.At.Sub(g.StartedAt()).Round(time.Millisecond),
		time.Since(g.StartedAt()).Round(time.Millisecond), g.Accel())
	if info.Release != k.release {
		t.Errorf("WaitAgent() release = %q, want %q", info.Release, k.release)
	}

	t.Run("run", func(t *testing.T) { testTinyRun(t, ctx, g) })
	t.Run("spawn", func(t *testing.T) { testTinySpawn(t, ctx, g) })
	t.Run("qmp", func(t *testing.T) { testTinyQMP(t, ctx, g) })
	t.Run("agent restart", func(t *testing.T) { testTinyAgentRestart(t, ctx, g) })
	t.Run("kexec", func(t *testing.T) { testTinyKexec(t, ctx, g, k) })
	t.Run("power off", func(t *testing.T) { testTinyPowerOff(t, ctx, g) })
}

func testTinyRun(t *testing.T, ctx context.Context, g *Guest) {
	for _, tt := range []struct {
		name string
		argv []string
		want Result
	}{
		{"stdout", []string{"/init", "echo", "hello", "guest"}, Result{Stdout: []byte("hello guest\n")}},
		{"stderr", []string{"/init", "stderr", "oops"}, Result{Stderr: []byte("oops\n")}},
		{"exit status", []string{"/init", "exit", "3"}, Result{ExitCode: 3}},
	} {
		got, err := g.Run(ctx, tt.argv...)
		if err != nil {
			t.Fatalf("Run(%q) = %v", tt.argv, err)
		}
		if string(got.Stdout) != string(tt.want.Stdout) || string(got.Stderr) != string(tt.want.Stderr) ||
			got.ExitCode != tt.want.ExitCode {
			t.Errorf("Run(%q) = %q, %q, exit %d; want %q, %q, exit %d", tt.argv, got.Stdout, got.Stderr,
				got.ExitCode, tt.want.Stdout, tt.want.Stderr, tt.want.ExitCode)
		}
	}

	got, err := g.Exec(ctx, Cmd{Argv: []string{"/init", "cat"}, Stdin: []byte("through stdin")})
	if err != nil || string(got.Stdout) != "through stdin" {
		t.Errorf("Exec(cat) = %q, %v; want \"through stdin\", nil", got.Stdout, err)
	}
	if _, err := g.Output(ctx, "/init", "exit", "4"); err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Errorf("Output(exit 4) = %v, want an error with \"exit status 4\"", err)
	}

	size := 3 << 20
	got, err = g.Run(ctx, "/init", "spew", fmt.Sprint(size))
	if err != nil || len(got.Stdout) != size || got.Truncated {
		t.Errorf("Run(spew %d) = %d bytes, truncated %v, %v; want %d bytes", size, len(got.Stdout),
			got.Truncated, err, size)
	}

	short, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	start := time.Now()
	_, err = g.Run(short, "/init", "sleep", "600")
	if !errors.Is(err, ErrCommandTimeout) {
		t.Errorf("Run(sleep 600) with a 4s deadline = %v, want ErrCommandTimeout", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Run(sleep 600) with a 4s deadline returned after %s", elapsed)
	}
}

func testTinySpawn(t *testing.T, ctx context.Context, g *Guest) {
	p, err := g.Spawn(ctx, "/init", "sid")
	if err != nil {
		t.Fatalf("Spawn(sid) = %v", err)
	}
	want := fmt.Sprintf("pid %d sid %d\n", p.PID, p.PID)
	var got []byte
	for range 50 {
		got, err = g.Output(ctx, "/init", "readfile", p.Log)
		if err == nil && len(got) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(got) != want {
		t.Errorf("spawn log %s = %q, %v; want %q (own session)", p.Log, got, err, want)
	}
}

func testTinyQMP(t *testing.T, ctx context.Context, g *Guest) {
	ret, err := g.QMP(ctx, "query-status", nil)
	if err != nil {
		t.Fatalf("QMP(query-status) = %v", err)
	}
	if !strings.Contains(string(ret), `"status": "running"`) && !strings.Contains(string(ret), `"status":"running"`) {
		t.Errorf("QMP(query-status) = %s, want status running", ret)
	}
	if _, err := g.QMP(ctx, "no-such-command", nil); err == nil || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Errorf("QMP(no-such-command) = %v, want a CommandNotFound error", err)
	}
}

func testTinyAgentRestart(t *testing.T, ctx context.Context, g *Guest) {
	before, err := g.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mark := g.Mark()
	if _, err := g.Spawn(ctx, "/init", "kill", fmt.Sprint(before.PID), "KILL"); err != nil {
		t.Fatalf("Spawn(kill agent) = %v", err)
	}
	if _, err := g.WaitConsoleFrom(ctx, mark, regexp.MustCompile(`KSU-TESTINIT agent restarted`)); err != nil {
		t.Fatal(err)
	}
	after, err := g.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Session == before.Session || after.PID == before.PID {
		t.Errorf("WaitAgent() after restart = %+v, want a new agent (before %+v)", after, before)
	}
	if out, err := g.Output(ctx, "/init", "echo", "again"); err != nil || string(out) != "again\n" {
		t.Errorf("Output(echo again) = %q, %v; want \"again\\n\"", out, err)
	}
}

func testTinyKexec(t *testing.T, ctx context.Context, g *Guest, k testKernel) {
	before, err := g.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mark := g.Mark()
	start := time.Now()
	if _, err := g.Run(ctx, "/init", "kill", "1", "USR1"); err != nil {
		t.Fatalf("Run(kill -USR1 1) = %v", err)
	}
	booted, err := g.WaitConsoleFrom(ctx, mark, regexp.MustCompile(`KSU-TESTINIT start gen=2`))
	if err != nil {
		t.Fatal(err)
	}
	after, err := g.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kexec: new init after %s, agent after %s", booted.At.Sub(start).Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
	if after.BootID == before.BootID || after.Session == before.Session || after.Release != k.release {
		t.Errorf("WaitAgent() after kexec = %+v, want a new boot id and session on %s (before %+v)",
			after, k.release, before)
	}
	if out, err := g.Output(ctx, "/init", "echo", "after kexec"); err != nil || string(out) != "after kexec\n" {
		t.Errorf("Output(echo) after kexec = %q, %v", out, err)
	}
}

func testTinyPowerOff(t *testing.T, ctx context.Context, g *Guest) {
	mark := g.Mark()
	if _, err := g.Spawn(ctx, "/init", "kill", "1", "USR2"); err != nil {
		t.Fatalf("Spawn(kill -USR2 1) = %v", err)
	}
	if err := g.Wait(ctx); err != nil {
		t.Fatalf("Wait() after power off = %v, want nil", err)
	}
	_, err := g.WaitConsoleFrom(ctx, mark, regexp.MustCompile(`never printed`))
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "KSU-TESTINIT power off") {
		t.Errorf("WaitConsoleFrom() after power off = %v, want ErrExited quoting the console", err)
	}
	if _, err := g.Run(ctx, "/init", "echo"); !errors.Is(err, ErrExited) {
		t.Errorf("Run() after power off = %v, want ErrExited", err)
	}
}
