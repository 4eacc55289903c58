package engine

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/netnstest"
	"github.com/ksu-project/ksu/pkg/tcprepair"
)

// TestIntegrationReleaseConnections puts an established connection of
// this test into repair mode behind a packet drop, as a dump that leaves
// its processes stopped does, and checks that ReleaseConnections gives
// the connection back: out of repair mode, the drop gone, data flowing.
func TestIntegrationReleaseConnections(t *testing.T) {
	needRoot(t)
	if !netnstest.Run(t) {
		return
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	raw, err := client.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	conn := netlock.Conn{
		Local:  client.LocalAddr().(*net.TCPAddr).AddrPort(),
		Remote: client.RemoteAddr().(*net.TCPAddr).AddrPort(),
	}
	if err := netlock.Lock([]netlock.Conn{conn}); err != nil {
		t.Fatalf("netlock.Lock(%v) = %v", conn, err)
	}
	if _, err := tcprepair.Save(fd); err != nil {
		t.Fatalf("tcprepair.Save(client) = %v", err)
	}

	if err := dump.ReleaseConnections([]int{os.Getpid()}); err != nil {
		t.Fatalf("ReleaseConnections(self) = %v, want nil error", err)
	}

	if repair, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR); err != nil || repair != 0 {
		t.Errorf("TCP_REPAIR after ReleaseConnections = %d, %v, want 0", repair, err)
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatalf("write after ReleaseConnections: %v", err)
	}
	buf := make([]byte, 4)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
		t.Errorf("server read after ReleaseConnections = %q, %v, want \"ping\"", buf, err)
	}
}
