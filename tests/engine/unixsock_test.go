package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/restore"
	"github.com/ksu-project/ksu/tests/workloads"
)

// buildWorkload compiles one C workload of tests/workloads into dir.
func buildWorkload(t testing.TB, dir, name string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: gcc not found, needed to build the C workload")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "workloads", "c")
	bin := filepath.Join(dir, name)
	out, err := exec.Command(gcc, "-static", "-O2", "-pthread", "-o", bin,
		filepath.Join(src, name+".c"), filepath.Join(src, "wl.c"), "-lm").CombinedOutput()
	if err != nil {
		t.Fatalf("build workload %s: %v\n%s", name, err, out)
	}
	return bin
}

// startWorkload starts bin in dir, waits for READY and returns the
// tracee with a workloads handle on it. It does not use workloads.Start,
// whose reaper waits on the child: a wait in the tracer's thread group
// also reports the child's ptrace stops and would take them from the
// dumper.
func startWorkload(t testing.TB, bin, dir string, args ...string) (*tracee, *workloads.Workload) {
	t.Helper()
	tr := startTracee(t, dir, bin, args...)
	w, err := workloads.Attach(tr.cmd.Process.Pid, tr.out)
	if err != nil {
		t.Fatal(err)
	}
	return tr, w
}

// dumpKillRestoreWorkload dumps tr with ExitKill, waits until it is
// gone, restores it and returns a handle on the restored process.
func dumpKillRestoreWorkload(t *testing.T, tr *tracee) *workloads.Workload {
	t.Helper()
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	stats, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}, Exit: dump.ExitKill, Producer: "engine test"})
	if err != nil {
		t.Fatalf("Dump(%d) = %v, want nil error", pid, err)
	}
	t.Logf("dump: %+v, snapshot %d bytes", stats, snap.Len())
	tr.kill()
	waitGone(t, []int{pid})
	rstats, err := restore.Restore(&snap, restore.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("Restore() = %v, want nil error", err)
	}
	t.Logf("restore: %+v", rstats)
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	})
	restored, err := workloads.Attach(pid, tr.out)
	if err != nil {
		t.Fatal(err)
	}
	return restored
}

// fdCopy returns a descriptor of the test for descriptor fd of process
// pid, sharing its open file description; it is closed at cleanup.
func fdCopy(t *testing.T, pid, fd int) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	sock, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd(%d, %d) = %v", pid, fd, err)
	}
	t.Cleanup(func() { unix.Close(sock) })
	return sock
}

// stealMessage receives one message from descriptor fd of process pid,
// as a loss in the restore would lose it.
func stealMessage(t *testing.T, pid, fd int) string {
	t.Helper()
	buf := make([]byte, 64)
	n, _, err := unix.Recvfrom(fdCopy(t, pid, fd), buf, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatalf("recv from fd %d of process %d = %v, want a queued message", fd, pid, err)
	}
	return string(buf[:n])
}

// checkRestoreAndSpoil dumps, kills and restores the workload at bin
// twice. The first restored copy must pass its self-check. The second
// gets spoil applied first, as a restore that lost that state would
// leave it, and its check must fail with a message that contains want:
// this shows the check can see the state at all.
func checkRestoreAndSpoil(t *testing.T, bin string, spoil func(t *testing.T, pid int), want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		name    string
		spoiled bool
	}{
		{"round trip", false},
		{"spoiled state fails the check", true},
	} {
		spoiled := tt.spoiled
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := startWorkload(t, bin, t.TempDir())
			restored := dumpKillRestoreWorkload(t, tr)
			if spoiled {
				spoil(t, restored.PID)
			}
			pass, out, err := restored.Check(ctx)
			if err != nil {
				t.Fatalf("Check() = %v\n%s", err, out)
			}
			if pass == spoiled {
				t.Errorf("Check() pass = %v, want %v; output:\n%s", pass, !spoiled, out)
			}
			if spoiled && !strings.Contains(out, want) {
				t.Errorf("Check() output = %q, want it to contain %q", out, want)
			}
		})
	}
}

// dgramPairReceiver is the descriptor of the unixsock workload's datagram
// socketpair end that holds two queued messages: after stdio come the
// stream pair (3, 4) and the datagram pair (5, 6).
const dgramPairReceiver = 6

func TestIntegrationUnixSockets(t *testing.T) {
	needRoot(t)
	bin := buildWorkload(t, t.TempDir(), "unixsock")
	checkRestoreAndSpoil(t, bin, func(t *testing.T, pid int) {
		got := stealMessage(t, pid, dgramPairReceiver)
		t.Logf("took %q from fd %d of the restored process", got, dgramPairReceiver)
	}, "datagram socketpair")
}

// TestIntegrationUnixPendingNeedsKill dumps the unixsock workload without
// killing it: a pending connection with data is rejected, because only
// accept can read it, and the workload resumes with every queue intact,
// which shows that the queues were copied without consuming them.
func TestIntegrationUnixPendingNeedsKill(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	_, w := startWorkload(t, buildWorkload(t, dir, "unixsock"), dir)
	var snap bytes.Buffer
	_, err := dump.Dump(&snap, dump.Options{PIDs: []int{w.PID}, Exit: dump.ExitRunning})
	var reject *dump.RejectError
	if !errors.As(err, &reject) {
		t.Fatalf("Dump(%d) = %v, want a *RejectError", w.PID, err)
	}
	if !strings.Contains(err.Error(), "pending connection has data queued") {
		t.Errorf("Dump(%d) = %q, want it to name the pending connection", w.PID, err)
	}
	pass, out, err := w.Check(ctx)
	if err != nil || !pass {
		t.Errorf("Check() after a rejected dump = %v, %v, want PASS; output:\n%s", pass, err, out)
	}
}

// TestIntegrationUnixPeerOutside gives the workload one end of a
// socketpair whose other end only the test holds: the dump must reject
// it and name the descriptor.
func TestIntegrationUnixPeerOutside(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	bin := buildWorkload(t, dir, "unixsock")
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	inside, outside := os.NewFile(uintptr(fds[0]), "inside"), os.NewFile(uintptr(fds[1]), "outside")
	defer outside.Close()
	log := filepath.Join(dir, "workload.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = dir, f, f, []*os.File{inside}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	inside.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tr := &tracee{out: log}
	tr.waitOutput(t, "READY", 10*time.Second)
	pid := cmd.Process.Pid
	var snap bytes.Buffer
	_, err = dump.Dump(&snap, dump.Options{PIDs: []int{pid}, Exit: dump.ExitKill})
	var reject *dump.RejectError
	if !errors.As(err, &reject) {
		t.Fatalf("Dump(%d) = %v, want a *RejectError", pid, err)
	}
	for _, want := range []string{fmt.Sprintf("process %d", pid), "fd 3", "held only outside the dumped processes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Dump(%d) = %q, want it to contain %q", pid, err, want)
		}
	}
	if err := unix.Kill(pid, 0); err != nil {
		t.Errorf("kill(%d, 0) after a rejected dump = %v, want the process alive", pid, err)
	}
}
