package netlock

import (
	"net"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/netnstest"
)

// readWithin reads from c until timeout and returns what arrived.
func readWithin(t *testing.T, c net.Conn, timeout time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return string(buf[:n])
}

func TestIntegrationLockDropsConnection(t *testing.T) {
	if !netnstest.Run(t) {
		return
	}
	client, server := netnstest.TCPPair(t)

	conn := Conn{
		Local:  client.LocalAddr().(*net.TCPAddr).AddrPort(),
		Remote: client.RemoteAddr().(*net.TCPAddr).AddrPort(),
	}
	if err := Lock([]Conn{conn}); err != nil {
		t.Fatalf("Lock(%v) = %v", conn, err)
	}
	if _, err := client.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	if got := readWithin(t, server, 500*time.Millisecond); got != "" {
		t.Errorf("server read %q while the connection was locked, want nothing", got)
	}

	if err := Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}
	// The kernel retransmits the dropped segment once its timer fires.
	if got := readWithin(t, server, 10*time.Second); got != "held" {
		t.Errorf("server read %q after Unlock, want %q", got, "held")
	}
	if err := Unlock(); err != nil {
		t.Errorf("Unlock() without a table = %v, want nil", err)
	}
}
