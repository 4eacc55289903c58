package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/netnstest"
)

// TestIntegrationTCPDualStackServer restores a server laid out like
// redis-server: listeners on 0.0.0.0 and [::] (IPV6_V6ONLY) sharing a
// port, all three watched by epoll, and a connection from the test on
// that port. The dump must record each socket once although the epoll
// list names it too, the restore must rebuild the listeners whatever the
// order of the descriptors, and the test's connection must carry a line
// each way afterwards.
func TestIntegrationTCPDualStackServer(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	bin := buildWithWL(t, t.TempDir(), "tcpdual")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"listeners first", nil},
		{"connection first", []string{"conn-first"}},
		{"IPv6 listener first", []string{"v6-first"}},
		{"IPv6 listener and connection first", []string{"v6-first", "conn-first"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := t.TempDir()
			tr, _ := startWorkload(t, bin, dir, tt.args...)
			port := tracePort(t, tr)
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t.Log(strings.TrimSpace(lastLine(tr.waitOutput(t, "ACCEPTED", 10*time.Second))))

			restored := dumpKillRestoreWorkload(t, tr)
			if _, err := conn.Write([]byte("after\n")); err != nil {
				t.Fatalf("write to the restored server = %v", err)
			}
			pass, out, err := restored.Check(ctx)
			if err != nil || !pass {
				t.Fatalf("Check() = %v, %v, want PASS; output:\n%s", pass, err, out)
			}
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			reply, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || reply != "reply\n" {
				t.Errorf("read from the restored server = %q, %v, want \"reply\\n\"", reply, err)
			}
		})
	}
}

// tracePort returns the port that a tracee printed as "PORT <n>".
func tracePort(t *testing.T, tr *tracee) int {
	t.Helper()
	out := tr.waitOutput(t, "PORT ", 10*time.Second)
	var port int
	if _, err := fmt.Sscanf(out[strings.Index(out, "PORT "):], "PORT %d", &port); err != nil {
		t.Fatalf("parse port from %q: %v", out, err)
	}
	return port
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestIntegrationRestoreFailureReaps makes "ksu restore" of the
// two-threaded tcpdual server fail, because the test holds the
// listeners' port, and checks that it exits and leaves no task of the
// server behind: a killed thread that the restore had seized must not
// keep its process from being reaped. It runs the command rather than
// calling restore.Restore because the runtime may run the tracer on the
// main OS thread there, which the runtime parks instead of ending.
func TestIntegrationRestoreFailureReaps(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	dir := t.TempDir()
	ksu := buildKSU(t, dir)
	bin := buildWithWL(t, dir, "tcpdual")
	for i := range 5 {
		tr, _ := startWorkload(t, bin, t.TempDir())
		port := tracePort(t, tr)
		pid := tr.cmd.Process.Pid
		snap := filepath.Join(dir, "snapshot")
		f, err := os.Create(snap)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dump.Dump(f, dump.Options{PIDs: []int{pid}, Exit: dump.ExitKill, Producer: "engine test"})
		f.Close()
		if err != nil {
			t.Fatalf("Dump(%d) = %v, want nil error", pid, err)
		}
		tr.kill()
		waitGone(t, []int{pid})

		holder, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, ksu, "restore", snap).CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		holder.Close()
		if timedOut {
			t.Fatalf("run %d: ksu restore with port %d taken still ran after 30 s:\n%s", i, port, out)
		}
		if err == nil || !strings.Contains(string(out), "address already in use") {
			t.Fatalf("run %d: ksu restore with port %d taken = %v, want EADDRINUSE; output:\n%s", i, port, err, out)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run %d: stat /proc/%d after the failed restore = %v, want it gone", i, pid, err)
		}
	}
}
