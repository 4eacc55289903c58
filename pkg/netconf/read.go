package netconf

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Read returns the links and the routes of the main table of the
// calling thread's network namespace.
func Read() ([]snapshot.Link, []snapshot.Route, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	names := make(map[int]string, len(links))
	var saved []snapshot.Link
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		sl, err := readLink(l)
		if err != nil {
			return nil, nil, err
		}
		saved = append(saved, sl)
	}
	routes, err := readRoutes(names)
	if err != nil {
		return nil, nil, err
	}
	return saved, routes, nil
}

// readLink returns the saved form of l with its addresses.
func readLink(l netlink.Link) (snapshot.Link, error) {
	a := l.Attrs()
	sl := snapshot.Link{Name: a.Name, MAC: []byte(a.HardwareAddr), MTU: uint32(a.MTU), Up: a.Flags&unix.IFF_UP != 0}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return sl, fmt.Errorf("list addresses of link %s (index %d): %w", a.Name, a.Index, err)
	}
	for _, addr := range addrs {
		if addr.IP.To4() == nil && addr.IP.IsLinkLocalUnicast() {
			continue
		}
		sl.Addrs = append(sl.Addrs, snapshot.Addr{Prefix: addr.IPNet.String()})
	}
	return sl, nil
}

// readRoutes returns the routes of the main table that the kernel did
// not add for an address. names maps interface indexes to names.
func readRoutes(names map[int]string) ([]snapshot.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of the main table: %w", err)
	}
	var saved []snapshot.Route
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST || len(r.MultiPath) > 0 {
			continue
		}
		sr := snapshot.Route{Link: names[r.LinkIndex], Priority: uint32(r.Priority), Scope: uint8(r.Scope),
			Protocol: uint8(r.Protocol)}
		if r.Dst != nil {
			sr.Dst = r.Dst.String()
		}
		if r.Gw != nil {
			sr.Gateway = r.Gw.String()
		}
		if r.Src != nil {
			sr.Src = r.Src.String()
		}
		saved = append(saved, sr)
	}
	return saved, nil
}
