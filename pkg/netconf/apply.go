package netconf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Apply brings back links, their addresses and routes, as Read returned
// them on another kernel. It waits up to wait for every link with a MAC
// address to appear, because a network driver may register its device
// after its module is loaded.
//
// Each link found gets its old name, MTU, addresses and up state. A link
// that is missing, or a step that fails, is an error in the joined
// result, and Apply goes on with the other links and routes.
//
// Limitation: links are only matched, never created, so virtual devices
// (bridges, veth pairs, tun devices) that no driver brings up at boot
// are missing, with their addresses and routes. Creating them from
// their saved kind and peers would lift this.
func Apply(links []snapshot.Link, routes []snapshot.Route, wait time.Duration) error {
	current, err := waitLinks(links, wait)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, sl := range links {
		if l := findLink(current, sl); l != nil {
			errs = append(errs, applyLink(l, sl))
		} else {
			errs = append(errs, fmt.Errorf("find link %s (MAC %v): not found", sl.Name, net.HardwareAddr(sl.MAC)))
		}
	}
	for _, r := range routes {
		if err := applyRoute(r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitLinks lists links until every saved link has a match or wait has
// passed, polling every 50 ms. It returns the last list.
func waitLinks(links []snapshot.Link, wait time.Duration) ([]netlink.Link, error) {
	const poll = 50 * time.Millisecond
	deadline := time.Now().Add(wait)
	for {
		current, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		if allFound(current, links) || time.Now().After(deadline) {
			return current, nil
		}
		time.Sleep(poll)
	}
}

func allFound(current []netlink.Link, links []snapshot.Link) bool {
	for _, sl := range links {
		if findLink(current, sl) == nil {
			return false
		}
	}
	return true
}

// findLink returns the link of current that sl was: the one with its MAC
// address, or for a link without one (loopback) the one with its name.
func findLink(current []netlink.Link, sl snapshot.Link) netlink.Link {
	for _, l := range current {
		a := l.Attrs()
		if len(sl.MAC) == 0 && len(a.HardwareAddr) == 0 && a.Name == sl.Name {
			return l
		}
		if len(sl.MAC) > 0 && bytes.Equal(a.HardwareAddr, sl.MAC) {
			return l
		}
	}
	return nil
}

// applyLink renames l to sl's name (the link must be down for that),
// sets its MTU and addresses, and sets it up if sl was up.
func applyLink(l netlink.Link, sl snapshot.Link) error {
	a := l.Attrs()
	if a.Name != sl.Name {
		if err := netlink.LinkSetDown(l); err != nil {
			return fmt.Errorf("set link %s down to rename it %s: %w", a.Name, sl.Name, err)
		}
		if err := netlink.LinkSetName(l, sl.Name); err != nil {
			return fmt.Errorf("rename link %s to %s: %w", a.Name, sl.Name, err)
		}
	}
	if sl.MTU != 0 && a.MTU != int(sl.MTU) {
		if err := netlink.LinkSetMTU(l, int(sl.MTU)); err != nil {
			return fmt.Errorf("set MTU of link %s to %d: %w", sl.Name, sl.MTU, err)
		}
	}
	var errs []error
	for _, sa := range sl.Addrs {
		errs = append(errs, addAddr(l, sl.Name, sa))
	}
	if sl.Up {
		if err := netlink.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("set link %s up: %w", sl.Name, err))
		}
	}
	return errors.Join(errs...)
}

// addAddr adds sa to l. An IPv6 address skips duplicate address
// detection: it was in use a moment ago, and a tentative address cannot
// be bound by the sockets the restore rebuilds.
func addAddr(l netlink.Link, name string, sa snapshot.Addr) error {
	addr, err := netlink.ParseAddr(sa.Prefix)
	if err != nil {
		return fmt.Errorf("parse address %q of link %s: %w", sa.Prefix, name, err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("add address %s to link %s: %w", sa.Prefix, name, err)
	}
	return nil
}

// applyRoute adds r, or replaces the route with the same destination,
// table and metric.
func applyRoute(r snapshot.Route) error {
	route := netlink.Route{Table: unix.RT_TABLE_MAIN, Priority: int(r.Priority), Scope: netlink.Scope(r.Scope),
		Protocol: netlink.RouteProtocol(r.Protocol)}
	if r.Link != "" {
		l, err := netlink.LinkByName(r.Link)
		if err != nil {
			return fmt.Errorf("add route %v: find link %s: %w", r, r.Link, err)
		}
		route.LinkIndex = l.Attrs().Index
	}
	if r.Dst != "" {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return fmt.Errorf("add route %v: parse destination: %w", r, err)
		}
		route.Dst = dst
	}
	route.Gw = net.ParseIP(r.Gateway)
	route.Src = net.ParseIP(r.Src)
	if err := netlink.RouteReplace(&route); err != nil {
		return fmt.Errorf("add route %v: %w", r, err)
	}
	return nil
}
