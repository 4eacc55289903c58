package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/netnstest"
)

// buildWithWL compiles testdata/name.c with the workloads' wl.c into dir.
func buildWithWL(t testing.TB, dir, name string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: gcc not found, needed to build the C tracee")
	}
	_, file, _, _ := runtime.Caller(0)
	wl := filepath.Join(filepath.Dir(file), "..", "workloads", "c")
	bin := filepath.Join(dir, name)
	out, err := exec.Command(gcc, "-static", "-O2", "-I", wl, "-o", bin,
		filepath.Join("testdata", name+".c"), filepath.Join(wl, "wl.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// closeListener shuts down descriptor fd of process pid, a listening
// socket, so that it stops accepting, as a restore that lost the
// listener would leave it.
func closeListener(t *testing.T, pid, fd int) {
	t.Helper()
	if err := unix.Shutdown(fdCopy(t, pid, fd), unix.SHUT_RDWR); err != nil {
		t.Fatalf("shutdown fd %d of process %d = %v", fd, pid, err)
	}
}

// tcpListener4 is the tcplisten tracee's IPv4 listener, after stdio.
const tcpListener4 = 3

func TestIntegrationTCPListen(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	bin := buildWithWL(t, t.TempDir(), "tcplisten")
	checkRestoreAndSpoil(t, bin, func(t *testing.T, pid int) {
		closeListener(t, pid, tcpListener4)
	}, "IPv4 listener")
}

// udpBound is the udp workload's bound socket with four queued
// datagrams, the first descriptor after stdio.
const udpBound = 3

func TestIntegrationUDP(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	bin := buildWorkload(t, t.TempDir(), "udp")
	checkRestoreAndSpoil(t, bin, func(t *testing.T, pid int) {
		got := stealMessage(t, pid, udpBound)
		t.Logf("took %q from fd %d of the restored process", got, udpBound)
	}, "bound socket, datagram 1")
}

// tcpServerEnd is the descriptor of the server end of the tcpconn
// tracee's connection: after stdio come the listener and the client.
const tcpServerEnd = 5

// stealBytes receives up to n bytes from descriptor fd of process pid.
func stealBytes(t *testing.T, pid, fd, n int) int {
	t.Helper()
	buf := make([]byte, n)
	got, _, err := unix.Recvfrom(fdCopy(t, pid, fd), buf, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatalf("recv from fd %d of process %d = %v, want queued data", fd, pid, err)
	}
	return got
}

func TestIntegrationTCPEstablished(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	bin := buildWithWL(t, t.TempDir(), "tcpconn")
	checkRestoreAndSpoil(t, bin, func(t *testing.T, pid int) {
		got := stealBytes(t, pid, tcpServerEnd, 100)
		t.Logf("took %d bytes from fd %d of the restored process", got, tcpServerEnd)
	}, "server: byte")
}

// TestIntegrationTCPOutsidePeer keeps a connection whose client is the
// test itself, outside the dumped process: the client sees no reset and
// talks to the restored server over the same connection.
func TestIntegrationTCPOutsidePeer(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	tr, _ := startWorkload(t, buildWithWL(t, dir, "tcpconn"), dir, "serve")
	out := tr.waitOutput(t, "PORT ", 10*time.Second)
	var port int
	if _, err := fmt.Sscanf(out[strings.Index(out, "PORT "):], "PORT %d", &port); err != nil {
		t.Fatalf("parse port from %q: %v", out, err)
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tr.waitOutput(t, "ACCEPTED", 10*time.Second)
	restored := dumpKillRestoreWorkload(t, tr)
	if _, err := conn.Write([]byte("after\n")); err != nil {
		t.Fatalf("write to the restored server = %v", err)
	}
	pass, wout, err := restored.Check(ctx)
	if err != nil || !pass {
		t.Fatalf("Check() = %v, %v, want PASS; output:\n%s", pass, err, wout)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || reply != "reply\n" {
		t.Errorf("read from the restored server = %q, %v, want \"reply\\n\"", reply, err)
	}
}

// TestIntegrationTCPWorkload runs the tcp workload: an established
// connection with data in every queue, plus a connection that waits in
// the listener's accept queue with data sent on it.
func TestIntegrationTCPWorkload(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	tr, _ := startWorkload(t, buildWorkload(t, dir, "tcp"), dir)
	restored := dumpKillRestoreWorkload(t, tr)
	pass, out, err := restored.Check(ctx)
	if err != nil || !pass {
		t.Fatalf("Check() = %v, %v, want PASS; output:\n%s", pass, err, out)
	}
}
