package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/restore"
)

// needRoot skips a test unless the process has CAP_SYS_ADMIN, which
// clone3 set_tid and PR_SET_MM need.
func needRoot(t testing.TB) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil || data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
		t.Skip("skipping: needs CAP_SYS_ADMIN")
	}
}

// buildC compiles a static C tracee from testdata into dir.
func buildC(t testing.TB, dir, name string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: gcc not found, needed to build the C tracee")
	}
	bin := filepath.Join(dir, name)
	out, err := exec.Command(gcc, "-static", "-O1", "-pthread", "-o", bin, filepath.Join("testdata", name+".c")).CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// tracee is a process the test started, writing its output to a file.
type tracee struct {
	cmd *exec.Cmd
	out string
}

func startTracee(t testing.TB, dir, bin string, args ...string) *tracee {
	t.Helper()
	out := filepath.Join(dir, "out.txt")
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = f, f, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &tracee{cmd: cmd, out: out}
	t.Cleanup(func() { tr.kill() })
	tr.waitOutput(t, "READY", 10*time.Second)
	return tr
}

func (tr *tracee) kill() {
	if tr.cmd != nil {
		tr.cmd.Process.Kill()
		tr.cmd.Wait()
		tr.cmd = nil
	}
}

func (tr *tracee) waitOutput(t testing.TB, marker string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(tr.out)
		if strings.Contains(string(b), marker) {
			return string(b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(tr.out)
	t.Fatalf("output of tracee = %q, want %q within %v", b, marker, timeout)
	return ""
}

// dumpKillRestore dumps the tree of tr, kills it and restores it.
func dumpKillRestore(t testing.TB, tr *tracee) []int {
	t.Helper()
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	stats, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}, Producer: "engine test"})
	if err != nil {
		t.Fatalf("Dump(%d) = %v, want nil error", pid, err)
	}
	t.Logf("dump: %+v, snapshot %d bytes", stats, snap.Len())
	pids := treePids(t, pid)
	tr.kill()
	waitGone(t, pids)
	rstats, err := restore.Restore(&snap, restore.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("Restore() = %v, want nil error", err)
	}
	t.Logf("restore: %+v", rstats)
	return pids
}

// treePids lists pid and its descendants, which the test kills.
func treePids(t testing.TB, pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{pid}
	for _, f := range strings.Fields(string(b)) {
		var kid int
		fmt.Sscan(f, &kid)
		pids = append(pids, kid)
	}
	return pids
}

func waitGone(t testing.TB, pids []int) {
	t.Helper()
	for _, pid := range pids[1:] {
		unix.Kill(pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d still exists after kill", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitExit waits for the restored root pid, the test's child, to exit.
func waitExit(t testing.TB, pid int, timeout time.Duration) unix.WaitStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait4(%d) = %v", pid, err)
		}
		if got == pid {
			return ws
		}
		time.Sleep(10 * time.Millisecond)
	}
	unix.Kill(pid, unix.SIGKILL)
	t.Fatalf("restored process %d did not exit within %v", pid, timeout)
	return 0
}

func TestIntegrationCounter(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		name    string
		threads string
	}{
		{"single thread", "0"},
		{"four threads", "4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := buildC(t, dir, "counter")
			data := filepath.Join(dir, "data")
			if err := os.WriteFile(data, bytes.Repeat([]byte("d"), 8192), 0o600); err != nil {
				t.Fatal(err)
			}
			tr := startTracee(t, dir, bin, data, tt.threads, "1500")
			pids := dumpKillRestore(t, tr)
			ws := waitExit(t, pids[0], 20*time.Second)
			out, _ := os.ReadFile(tr.out)
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Fatalf("restored process %d ended with %#x, want exit 0; output:\n%s", pids[0], uint32(ws), out)
			}
			if !strings.Contains(string(out), "PASS") {
				t.Errorf("output = %q, want PASS", out)
			}
		})
	}
}

func TestIntegrationPipeTree(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tr := startTracee(t, dir, buildC(t, dir, "tree"))
	pids := dumpKillRestore(t, tr)
	if len(pids) != 2 {
		t.Fatalf("tree of %d = %v, want parent and child", pids[0], pids)
	}
	ws := waitExit(t, pids[0], 20*time.Second)
	out, _ := os.ReadFile(tr.out)
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("restored parent %d ended with %#x, want exit 0; output:\n%s", pids[0], uint32(ws), out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Errorf("output = %q, want PASS", out)
	}
}

func TestIntegrationRejectSocket(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tr := startTracee(t, dir, buildC(t, dir, "tree"), "socket")
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	_, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}})
	var reject *dump.RejectError
	if !errors.As(err, &reject) {
		t.Fatalf("Dump(%d) = %v, want a *RejectError", pid, err)
	}
	for _, want := range []string{fmt.Sprintf("process %d", pid), "fd 3", "socket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Dump(%d) = %q, want it to name %q", pid, err, want)
		}
	}
	// The tree resumes: the child still reads the pipe and the parent
	// reports PASS.
	tr.waitOutput(t, "PASS", 10*time.Second)
}

// BenchmarkDumpRestore1GiB reports dump and restore throughput for a
// process with 1 GiB of anonymous memory, half of it zero pages.
func BenchmarkDumpRestore1GiB(b *testing.B) {
	needRoot(b)
	dir := b.TempDir()
	bin := buildC(b, dir, "big")
	for range b.N {
		tr := startTracee(b, dir, bin)
		pid := tr.cmd.Process.Pid
		path := filepath.Join(dir, "snap")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		stats, err := dump.Dump(f, dump.Options{PIDs: []int{pid}})
		f.Close()
		if err != nil {
			b.Fatalf("Dump(%d) = %v", pid, err)
		}
		dumpTime := time.Since(start)
		tr.kill()
		waitGone(b, []int{pid})
		f, err = os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		_, err = restore.Restore(f, restore.Options{})
		restoreTime := time.Since(start)
		f.Close()
		if err != nil {
			b.Fatalf("Restore() = %v", err)
		}
		unix.Kill(pid, unix.SIGKILL)
		waitExit(b, pid, 10*time.Second)
		fi, _ := os.Stat(path)
		mb := float64(1<<30) / 1e6
		b.ReportMetric(mb/dumpTime.Seconds(), "dump-MB/s")
		b.ReportMetric(mb/restoreTime.Seconds(), "restore-MB/s")
		b.ReportMetric(float64(fi.Size()), "snapshot-bytes")
		b.ReportMetric(float64(stats.Pages), "page-bytes")
		os.Remove(path)
	}
}
