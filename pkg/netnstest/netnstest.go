// Package netnstest runs a test inside a network namespace of its own,
// so that the addresses, routes and nftables rules it sets up touch
// nothing of the machine's. Only tests import it.
package netnstest

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv marks a test binary that runs inside the namespace that Run
// created for it.
const childEnv = "KSU_TEST_NETNS"

// Run runs the calling test again in a child test binary inside a new
// network namespace with loopback up. It returns true in that child,
// where the test goes on. In the parent it reports the child's result
// and returns false. It skips the test without CAP_SYS_ADMIN or unshare.
func Run(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set lo up in the test's network namespace: %v\n%s", err, out)
		}
		return true
	}
	if !hasCapSysAdmin() {
		t.Skip("skipping: needs CAP_SYS_ADMIN for a network namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("skipping: unshare not found, needed for a network namespace")
	}

	cmd := exec.Command(unshare, "--net", "--", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a new network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in a new network namespace: %v", t.Name(), err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a new network namespace did not pass", t.Name())
	}
	return false
}

func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	return unix.Capget(&hdr, &data[0]) == nil && data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}

// TCPPair returns both ends of an IPv4 TCP connection over loopback.
// Both are closed at cleanup.
func TCPPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed.(*net.TCPConn), accepted.(*net.TCPConn)
}
