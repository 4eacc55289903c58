package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestIntegrationTCPDualStackServer restores a server laid out like
// redis-server: listeners on 0.0.0.0 and [::] (IPV6_V6ONLY) sharing a
// port, and a connection from the test on that port. The restore must
// rebuild the listeners whatever the order of the descriptors, and the
// test's connection must carry a line each way afterwards.
func TestIntegrationTCPDualStackServer(t *testing.T) {
	needRoot(t)
	if !runInNetns(t) {
		return
	}
	bin := buildWithWL(t, t.TempDir(), "tcpdual")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"listeners first", nil},
		{"connection first", []string{"conn-first"}},
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
