package netconf

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/netnstest"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

func TestFindLink(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	current := []netlink.Link{
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: 1}},
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2, HardwareAddr: mac}},
	}
	tests := []struct {
		saved snapshot.Link
		want  string // name of the link found, "" for none
	}{
		{snapshot.Link{Name: "lo"}, "lo"},
		{snapshot.Link{Name: "ens3", MAC: mac}, "eth0"},
		{snapshot.Link{Name: "eth0", MAC: []byte{0x52, 0x54, 0, 0, 0, 1}}, ""},
		{snapshot.Link{Name: "eth0"}, ""},
	}
	for _, tt := range tests {
		got := ""
		if l := findLink(current, tt.saved); l != nil {
			got = l.Attrs().Name
		}
		if got != tt.want {
			t.Errorf("findLink(%s, MAC %v) = %q, want %q", tt.saved.Name, net.HardwareAddr(tt.saved.MAC), got, tt.want)
		}
	}
}

// TestIntegrationApplyRead saves an address and a route of loopback,
// removes them, applies the saved configuration and reads it back.
func TestIntegrationApplyRead(t *testing.T) {
	if !netnstest.Run(t) {
		return
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.77.0.1/24")
	if err := netlink.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.78.0.0/24")
	route := &netlink.Route{LinkIndex: lo.Attrs().Index, Dst: dst, Src: addr.IP, Scope: netlink.SCOPE_LINK, Priority: 7,
		Protocol: unix.RTPROT_STATIC}
	if err := netlink.RouteAdd(route); err != nil {
		t.Fatal(err)
	}
	links, routes, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	wantRoute := snapshot.Route{Dst: "10.78.0.0/24", Link: "lo", Src: "10.77.0.1", Priority: 7, Scope: unix.RT_SCOPE_LINK,
		Protocol: unix.RTPROT_STATIC}
	if diff := cmp.Diff([]snapshot.Route{wantRoute}, routes); diff != "" {
		t.Errorf("Read() routes (-want +got):\n%s", diff)
	}

	if err := netlink.RouteDel(route); err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrDel(lo, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(lo); err != nil {
		t.Fatal(err)
	}
	if err := Apply(links, routes, 0); err != nil {
		t.Fatalf("Apply(%v, %v) = %v, want nil", links, routes, err)
	}
	gotLinks, gotRoutes, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(links, gotLinks); diff != "" {
		t.Errorf("links after Apply (-saved +read):\n%s", diff)
	}
	if diff := cmp.Diff(routes, gotRoutes); diff != "" {
		t.Errorf("routes after Apply (-saved +read):\n%s", diff)
	}
}
