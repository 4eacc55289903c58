package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKernelCmdline(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"", "console=ttyS0 panic=-1 no_timer_check"},
		{"root=/dev/vda rw", "root=/dev/vda rw console=ttyS0 panic=-1 no_timer_check"},
		{"console=hvc0 panic=10 no_timer_check", "console=hvc0 panic=10 no_timer_check"},
		{"  quiet   console=ttyS1 ", "quiet console=ttyS1 panic=-1 no_timer_check"},
		{"myconsole=x", "myconsole=x console=ttyS0 panic=-1 no_timer_check"},
	} {
		if got := kernelCmdline(tt.in); got != tt.want {
			t.Errorf("kernelCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestArgs(t *testing.T) {
	cfg := Config{
		Kernel: "/k", Initrd: "/i", Cmdline: "root=/dev/vda", MemoryMB: 2048, CPUs: 2,
		Forwards:  []Forward{{HostPort: 2222, GuestPort: 22}, {HostPort: 6380, GuestPort: 6379}},
		ExtraArgs: []string{"-s"},
	}
	p := paths{overlay: "/w/disk.qcow2", agent: "/w/agent.sock", qmp: "/w/qmp.sock"}
	want := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-m", "2048", "-smp", "2",
		"-kernel", "/k", "-append", "root=/dev/vda console=ttyS0 panic=-1 no_timer_check",
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=/w/agent.sock,server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=org.ksu.agent",
		"-qmp", "unix:/w/qmp.sock,server=on,wait=off",
		"-accel", "tcg,tb-size=64", "-cpu", "max",
		"-initrd", "/i",
		"-drive", "file=/w/disk.qcow2,format=qcow2,if=virtio,cache=unsafe",
		"-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:6380-:6379",
		"-device", "virtio-net-pci,netdev=net0",
		"-s",
	}
	if diff := cmp.Diff(want, args(cfg, AccelTCG, p)); diff != "" {
		t.Errorf("args() mismatch (-want +got):\n%s", diff)
	}
}

func TestArgsMinimal(t *testing.T) {
	got := strings.Join(args(Config{Kernel: "/k"}.withDefaults(), AccelKVM, paths{agent: "a", qmp: "q"}), " ")
	for _, want := range []string{"-accel kvm -cpu host", "-m 1024 -smp 1"} {
		if !strings.Contains(got, want) {
			t.Errorf("args() = %q, want it to contain %q", got, want)
		}
	}
	for _, absent := range []string{"-initrd", "-drive"} {
		if strings.Contains(got, absent) {
			t.Errorf("args() = %q, want no %s", got, absent)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", Config{Kernel: file, WorkDir: "/w", Forwards: []Forward{{GuestPort: 22}}}, ""},
		{"no kernel", Config{WorkDir: "/w"}, "Kernel is empty"},
		{"no work dir", Config{Kernel: file}, "WorkDir is empty"},
		{"missing initrd", Config{Kernel: file, WorkDir: "/w", Initrd: "/nonexistent"}, "/nonexistent"},
		{"missing disk", Config{Kernel: file, WorkDir: "/w", Disk: "/nonexistent.img"}, "/nonexistent.img"},
		{"bad guest port", Config{Kernel: file, WorkDir: "/w", Forwards: []Forward{{}}}, "out of range"},
		{"bad host port", Config{Kernel: file, WorkDir: "/w", Forwards: []Forward{{HostPort: 70000, GuestPort: 1}}},
			"out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPickFreePorts(t *testing.T) {
	forwards := []Forward{{GuestPort: 22}, {HostPort: 4444, GuestPort: 80}, {GuestPort: 6379}}
	if err := pickFreePorts(forwards); err != nil {
		t.Fatalf("pickFreePorts() = %v", err)
	}
	if forwards[0].HostPort == 0 || forwards[2].HostPort == 0 || forwards[0].HostPort == forwards[2].HostPort {
		t.Errorf("pickFreePorts() = %+v, want two distinct picked ports", forwards)
	}
	if forwards[1].HostPort != 4444 {
		t.Errorf("pickFreePorts() changed a fixed port: %+v", forwards[1])
	}
}

func TestSocketDir(t *testing.T) {
	short := t.TempDir()
	if dir, own, err := socketDir(short); err != nil || dir != short || own {
		t.Errorf("socketDir(%q) = %q, %v, %v; want the work directory", short, dir, own, err)
	}
	long := filepath.Join(short, strings.Repeat("d", 120))
	dir, own, err := socketDir(long)
	if err != nil || !own || len(dir)+len("/agent.sock") >= 100 {
		t.Fatalf("socketDir(%d-byte path) = %q, %v, %v; want a short directory of its own", len(long), dir, own, err)
	}
	os.RemoveAll(dir)
}

// feedConsole returns a console reading from a pipe and the pipe's writer.
func feedConsole(t *testing.T) (*console, *io.PipeWriter, *strings.Builder) {
	t.Helper()
	r, w := io.Pipe()
	log := &strings.Builder{}
	c := newConsole(time.Now(), log)
	go c.readFrom(r)
	t.Cleanup(func() { w.Close() })
	return c, w, log
}

func TestConsoleWait(t *testing.T) {
	c, w, _ := feedConsole(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	io.WriteString(w, "boot\r\nREADY one\n")
	first, err := c.waitFrom(ctx, 0, regexp.MustCompile(`READY`))
	if err != nil || first.Text != "READY one" || first.Index != 1 {
		t.Fatalf("waitFrom(0, READY) = %+v, %v; want line 1 \"READY one\"", first, err)
	}
	mark := c.mark()
	if mark != 2 {
		t.Errorf("mark() = %d, want 2", mark)
	}
	got := make(chan Line, 1)
	go func() {
		line, _ := c.waitFrom(ctx, mark, regexp.MustCompile(`READY`))
		got <- line
	}()
	time.Sleep(50 * time.Millisecond)
	io.WriteString(w, "noise\nREADY two\n")
	if line := <-got; line.Text != "READY two" || line.Index != 3 {
		t.Errorf("waitFrom(%d, READY) = %+v, want line 3 \"READY two\"", mark, line)
	}
	if line, err := c.waitFrom(ctx, first.Next(), regexp.MustCompile(`READY`)); err != nil || line.Index != 3 {
		t.Errorf("waitFrom(first.Next(), READY) = %+v, %v; want line 3", line, err)
	}
}

func TestConsoleWaitEnds(t *testing.T) {
	c, w, _ := feedConsole(t)
	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.waitFrom(short, 0, regexp.MustCompile(`never`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waitFrom() past the deadline = %v, want context.DeadlineExceeded", err)
	}
	io.WriteString(w, "last words\n")
	w.Close()
	ctx, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if _, err := c.waitFrom(ctx, 0, regexp.MustCompile(`never`)); !errors.Is(err, errConsoleClosed) {
		t.Errorf("waitFrom() after the output ended = %v, want errConsoleClosed", err)
	}
	if line, err := c.waitFrom(ctx, 0, regexp.MustCompile(`last`)); err != nil || line.Text != "last words" {
		t.Errorf("waitFrom(last) after the output ended = %+v, %v; want the line", line, err)
	}
}

func TestConsoleLongLineAndLog(t *testing.T) {
	c, w, log := feedConsole(t)
	io.WriteString(w, strings.Repeat("x", maxLineBytes+10)+"\nend\n")
	w.Close()
	<-c.done
	var lengths []int
	for _, l := range c.linesFrom(0) {
		lengths = append(lengths, len(l.Text))
	}
	if diff := cmp.Diff([]int{maxLineBytes, 10, 3}, lengths); diff != "" {
		t.Errorf("line lengths mismatch (-want +got):\n%s", diff)
	}
	logLines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(logLines) != 3 || !regexp.MustCompile(`^ +\d+\.\d{3} end$`).MatchString(logLines[2]) {
		t.Errorf("console.log ends with %q, want \"SECONDS end\"", logLines[len(logLines)-1])
	}
	if diff := cmp.Diff([]string{strings.Repeat("x", 10), "end"}, c.tail(2)); diff != "" {
		t.Errorf("tail(2) mismatch (-want +got):\n%s", diff)
	}
}

func TestConsoleDropsOldLines(t *testing.T) {
	c := newConsole(time.Now(), io.Discard)
	for i := range maxConsoleLines + 1 {
		c.add(fmt.Sprint(i), time.Now())
	}
	lines := c.linesFrom(0)
	if first := lines[0]; first.Index != maxConsoleLines/2 || first.Text != fmt.Sprint(maxConsoleLines/2) {
		t.Errorf("first kept line = %+v, want index and text %d", first, maxConsoleLines/2)
	}
	if c.mark() != maxConsoleLines+1 {
		t.Errorf("mark() = %d, want %d", c.mark(), maxConsoleLines+1)
	}
}

// fakeQMP serves one QMP client on a unix socket with scripted replies.
func fakeQMP(t *testing.T, reply func(cmd map[string]any) []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintln(conn, `{"QMP": {"version": {}, "capabilities": []}}`)
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var cmd map[string]any
			json.Unmarshal(sc.Bytes(), &cmd)
			for _, line := range reply(cmd) {
				fmt.Fprintln(conn, line)
			}
		}
	}()
	return path
}

func TestQMP(t *testing.T) {
	path := fakeQMP(t, func(cmd map[string]any) []string {
		id := cmd["id"]
		switch cmd["execute"] {
		case "qmp_capabilities":
			return []string{fmt.Sprintf(`{"return": {}, "id": %v}`, id)}
		case "query-status":
			return []string{
				`{"event": "RESUME", "timestamp": {}}`,
				`{"return": {"status": "stale"}, "id": 999}`,
				fmt.Sprintf(`{"return": {"status": "running"}, "id": %v}`, id),
			}
		case "dump-guest-memory":
			args, _ := json.Marshal(cmd["arguments"])
			return []string{fmt.Sprintf(`{"return": %s, "id": %v}`, args, id)}
		}
		return []string{fmt.Sprintf(`{"error": {"class": "CommandNotFound", "desc": "no %v"}, "id": %v}`,
			cmd["execute"], id)}
	})
	g := &Guest{}
	g.qmp.path = path
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, tt := range []struct {
		command string
		args    any
		want    string
		wantErr string
	}{
		{"query-status", nil, `{"status": "running"}`, ""},
		{"dump-guest-memory", map[string]any{"paging": false}, `{"paging":false}`, ""},
		{"bogus", nil, "", "qmp bogus: CommandNotFound: no bogus"},
		{"query-status", nil, `{"status": "running"}`, ""},
	} {
		got, err := g.QMP(ctx, tt.command, tt.args)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("QMP(%s) = %s, %v; want error %q", tt.command, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("QMP(%s) = %s, %v; want %s", tt.command, got, err, tt.want)
		}
	}
	g.qmp.shutdown()
	if _, err := g.QMP(ctx, "query-status", nil); err == nil {
		t.Errorf("QMP() after shutdown = nil error, want one")
	}
}

// startFake starts the test binary as a fake QEMU in the given mode.
func startFake(t *testing.T, mode string) *Guest {
	t.Helper()
	t.Setenv(fakeQEMUEnv, mode)
	t.Setenv(AccelEnv, AccelTCG)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return StartT(t, Config{Kernel: kernel, Binary: self, Forwards: []Forward{{GuestPort: 22}}})
}

func TestGuestFake(t *testing.T) {
	g := startFake(t, "run")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	line, err := g.WaitConsole(ctx, regexp.MustCompile(`^FAKE-READY$`))
	if err != nil {
		t.Fatal(err)
	}
	if line.At.Before(g.StartedAt()) {
		t.Errorf("line %+v arrived before QEMU started at %s", line, g.StartedAt())
	}
	args, err := g.WaitConsole(ctx, regexp.MustCompile(`^args: `))
	if err != nil {
		t.Fatal(err)
	}
	fwd := fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:22", g.HostPort(22))
	if g.HostPort(22) == 0 || !strings.Contains(args.Text, fwd) {
		t.Errorf("QEMU args %q, want %q", args.Text, fwd)
	}
	out, err := g.Output(ctx, "echo", "via", "agent")
	if err != nil || string(out) != "via agent\n" {
		t.Errorf("Output(echo) = %q, %v; want \"via agent\\n\"", out, err)
	}
	if _, err := g.WaitAgent(ctx); err != nil {
		t.Errorf("WaitAgent() = %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	_, err = g.WaitConsole(short, regexp.MustCompile(`never`))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "FAKE-READY") {
		t.Errorf("WaitConsole(never) = %v, want a deadline error quoting the console", err)
	}

	g.Close()
	select {
	case <-g.Exited():
	default:
		t.Errorf("QEMU still runs after Close")
	}
	for _, sock := range []string{g.paths.agent, g.paths.qmp} {
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("socket %s left after Close", sock)
		}
	}
}

func TestGuestFakeExits(t *testing.T) {
	g := startFake(t, "exit")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := g.WaitConsole(ctx, regexp.MustCompile(`never`))
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitConsole(never) = %v, want ErrExited", err)
	}
	for _, want := range []string{"exit status 3", "guest said goodbye", "fake guest halting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("WaitConsole(never) = %v, want it to quote %q", err, want)
		}
	}
	if _, err := g.Run(ctx, "true"); !errors.Is(err, ErrExited) {
		t.Errorf("Run(true) after exit = %v, want ErrExited", err)
	}
	if err := g.Wait(ctx); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait() = %v, want exit status 3", err)
	}
}

// TestQEMUDiesWithParent kills a process that started a (fake) QEMU and
// checks that QEMU goes with it.
func TestQEMUDiesWithParent(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(self)
	parent.Env = append(os.Environ(), fakeParentEnv+"="+t.TempDir())
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Wait()
	defer parent.Process.Kill()

	var qemuPID int
	if _, err := fmt.Fscanf(bufio.NewReader(stdout), "qemu %d\n", &qemuPID); err != nil {
		t.Fatalf("read the fake QEMU's pid from the parent: %v", err)
	}
	if !processRuns(qemuPID) {
		t.Fatalf("fake QEMU pid %d is not running before its parent dies", qemuPID)
	}

	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if !processRuns(qemuPID) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(qemuPID, syscall.SIGKILL)
	t.Errorf("fake QEMU pid %d still runs 5s after its parent was killed", qemuPID)
}

// processRuns reports whether pid exists and is not a zombie.
func processRuns(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
