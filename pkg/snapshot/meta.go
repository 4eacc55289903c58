package snapshot

import "time"

// Meta is the snapshot-wide metadata. It is the first section of every
// snapshot, so a reader can check the source machine before it reads any
// process.
type Meta struct {
	KernelRelease string        // release of the kernel that took the snapshot, as uname -r prints it
	BootID        string        // /proc/sys/kernel/random/boot_id of that boot
	Machine       string        // architecture, as uname -m prints it ("x86_64")
	PageSize      uint32        // page size in bytes; page ranges are multiples of it
	Monotonic     time.Duration // CLOCK_MONOTONIC at the dump, as the dumped processes read it
	Boottime      time.Duration // CLOCK_BOOTTIME at the dump, as the dumped processes read it
	Time          time.Time     // CLOCK_REALTIME at the dump
	Hostname      string        // UTS host name of the dumped processes
	Producer      string        // name and version of the program that wrote the snapshot
	// VDSO is the [vdso] mapping of the kernel that took the snapshot,
	// byte for byte (every process of one boot maps the same image).
	// The restore compares it with the running kernel's vDSO. It is
	// empty when that kernel maps no vDSO.
	VDSO []byte
	// Links and Routes are the network configuration of the dumped
	// processes' network namespace, which the new kernel's ksu-init
	// applies before the restore so that rebuilt sockets find their
	// local addresses.
	Links  []Link
	Routes []Route
}

// Link is one network interface. The new kernel may name its devices
// differently, so ksu-init finds each link by its MAC address.
type Link struct {
	Name  string // interface name, as ip link prints it ("eth0")
	MAC   []byte // hardware address; empty for loopback
	MTU   uint32 // in bytes
	Up    bool   // administratively up (IFF_UP)
	Addrs []Addr
}

// Addr is one address of a link.
type Addr struct {
	Prefix string // address and prefix length in CIDR notation ("10.0.2.15/24")
}

// Route is one route of the main routing table.
type Route struct {
	Dst      string // destination in CIDR notation; empty for the default route
	Gateway  string // next hop address; empty for a directly connected route
	Link     string // name of the output interface
	Src      string // preferred source address; may be empty
	Priority uint32 // metric
	Scope    uint8  // rtm_scope: 0 universe, 253 link, 254 host
	// Protocol is rtm_protocol, the route's origin: 4 static, 16 dhcp.
	// systemd-networkd's KeepConfiguration=static keeps only routes
	// with protocol static, so the new kernel's routes keep it.
	Protocol uint8
}

// end is the payload of the last section. Its counts let a reader tell a
// complete stream from one cut at a section boundary.
type end struct {
	Sections  uint64 // sections before the end section, Meta included
	PageBytes uint64 // page data bytes in all page sections
}
