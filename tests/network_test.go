package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// echoTimeout bounds one round trip on the preserved connection. It
// covers a whole kernel switch under software emulation, because the
// echo of a message sent just before the freeze arrives after the
// restore.
const echoTimeout = 5 * time.Minute

// TestPreserveConnection switches the guest to the new release while a
// client on the host holds one TCP connection to an echo server in the
// guest, through QEMU's port forward. The client keeps sending during
// the switch. Every message must come back in order on the same
// connection, which must never be reset or closed.
func TestPreserveConnection(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease, scenario.EchoPort)

	const serverPath = "/usr/local/bin/ksu-echo"
	if err := scenario.InstallProgram(ctx, g, t.TempDir(), serverPath, scenario.EchoServerSource); err != nil {
		t.Fatal(err)
	}
	server, err := scenario.StartWorkload(ctx, g, "echo", serverPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", g.HostPort(scenario.EchoPort))
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer conn.Close()
	c := &echoClient{conn: conn}
	if err := c.roundTrip(time.Minute); err != nil {
		t.Fatalf("before the update: %v", err)
	}
	if _, err := server.WaitLog(ctx, g, time.Minute, "accepted"); err != nil {
		t.Fatal(err)
	}

	pinger := c.start()
	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--pid", fmt.Sprint(server.PID))
	pinger.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch %s -> %s\n%s", s.From, s.To, s.Report())
	checkConnectionReport(t, ctx, g, server.PID)
	if pinger.err != nil {
		t.Fatalf("during the update, after %d round trips: %v", pinger.count, pinger.err)
	}
	if err := c.roundTrip(time.Minute); err != nil {
		t.Fatalf("after the update, on the same connection: %v", err)
	}
	t.Logf("%d round trips during the update; longest %v (the pause the client saw)",
		pinger.count, pinger.longest.Round(time.Millisecond))
	if err := server.Alive(ctx, g, serverPath); err != nil {
		t.Error(err)
	}
	logServer(t, ctx, g, server)
}

// checkConnectionReport fails the test unless the restore report lists
// pid as restored.
func checkConnectionReport(t *testing.T, ctx context.Context, g *qemu.Guest, pid int) {
	t.Helper()
	rep, err := scenario.ReadReport(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: kernel %s, restored %v, failures %v, pause %v",
		rep.Kernel, rep.Restored, rep.Failures, time.Duration(rep.Pause).Round(time.Millisecond))
	for _, p := range rep.Phases {
		t.Logf("  new kernel phase %-10s %8v", p.Phase, p.Duration.Round(time.Millisecond))
	}
	logNetworkStage(t, g)
	if len(rep.Failures) > 0 {
		logRestorer(t, g)
		t.Fatalf("restore failures: %+v", rep.Failures)
	}
	if !slices.Contains(rep.Restored, int32(pid)) {
		t.Fatalf("report restored %v, want it to contain %d", rep.Restored, pid)
	}
}

// logNetworkStage logs the console lines of ksu-init's network stage.
func logNetworkStage(t *testing.T, g *qemu.Guest) {
	t.Helper()
	data, err := os.ReadFile(g.ConsoleLog())
	if err != nil {
		t.Logf("read console log: %v", err)
		return
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "ksu-init: ") && (strings.Contains(l, "network") || strings.Contains(l, "tcp connections")) {
			t.Logf("console: %s", strings.TrimSpace(l))
		}
	}
}

// logServer logs the echo server's output, which shows whether its
// connection ended.
func logServer(t *testing.T, ctx context.Context, g *qemu.Guest, w scenario.Preserved) {
	t.Helper()
	out, err := g.Output(ctx, "cat", w.Log)
	if err != nil {
		t.Logf("read echo server log: %v", err)
		return
	}
	t.Logf("echo server log:\n%s", out)
	if strings.Contains(string(out), "closed") {
		t.Errorf("echo server log %s: connection closed, want it open", w.Log)
	}
}

// echoClient sends numbered messages on one connection and checks that
// each comes back unchanged.
type echoClient struct {
	conn net.Conn
	seq  int
}

// roundTrip sends the next message and reads its echo, within d.
func (c *echoClient) roundTrip(d time.Duration) error {
	c.seq++
	msg := []byte(fmt.Sprintf("message %d from the host\n", c.seq))
	if err := c.conn.SetDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	if _, err := c.conn.Write(msg); err != nil {
		return fmt.Errorf("send message %d: %w", c.seq, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c.conn, got); err != nil {
		return fmt.Errorf("read echo of message %d: %w", c.seq, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of message %d = %q, want %q", c.seq, got, msg)
	}
	return nil
}

// pinger runs round trips in the background until stop.
type pinger struct {
	done, quit chan struct{}
	count      int
	longest    time.Duration
	err        error
}

// start sends a message every 100 ms, at most 10000 of them, each
// bounded by echoTimeout.
func (c *echoClient) start() *pinger {
	p := &pinger{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(p.done)
		for range 10000 {
			select {
			case <-p.quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			if p.err = c.roundTrip(echoTimeout); p.err != nil {
				return
			}
			p.count++
			p.longest = max(p.longest, time.Since(start))
		}
	}()
	return p
}

// stop waits for the round trip under way to finish.
func (p *pinger) stop() {
	close(p.quit)
	<-p.done
}
