package netlock

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsEnv marks the child test binary that runs in its own network
// namespace.
const netnsEnv = "KSU_NETLOCK_NETNS"

// inOwnNetns re-runs the calling test in a new network namespace with
// loopback up and returns true in that child. The test sets nftables
// rules only there, never in the machine's own namespace.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set lo up: %v\n%s", err, out)
		}
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil || data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
		t.Skip("skipping: needs CAP_SYS_ADMIN for a network namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("skipping: unshare not found")
	}
	cmd := exec.Command(unshare, "--net", "--", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a new network namespace: %v", t.Name(), err)
	}
	return false
}

// readWithin reads from c until timeout and returns what arrived.
func readWithin(t *testing.T, c net.Conn, timeout time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return string(buf[:n])
}

func TestIntegrationLockDropsConnection(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	conn := Conn{
		Local:  netip.MustParseAddrPort(client.LocalAddr().String()),
		Remote: netip.MustParseAddrPort(client.RemoteAddr().String()),
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
