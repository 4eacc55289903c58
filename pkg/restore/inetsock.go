package restore

import (
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/tcprepair"
)

// tcpEstablished is the sk_state of a connected socket.
const tcpEstablished = 1

// openInetSocket returns the restorer's descriptor of TCP or UDP socket
// sf, rebuilding every TCP and UDP socket of the snapshot on first use.
// All of them must exist first because a UDP datagram is queued again by
// sending it from the socket it came from.
func (rs *restorer) openInetSocket(sf *snapshot.File) (*fdFile, error) {
	if sf.Socket == nil {
		return nil, fmt.Errorf("%v socket file %d has no socket record", sf.Kind, sf.ID)
	}
	if err := rs.buildInetSockets(); err != nil {
		return nil, err
	}
	f, ok := rs.open[sf.ID]
	if !ok {
		return nil, fmt.Errorf("%v socket file %d was not rebuilt", sf.Kind, sf.ID)
	}
	return f, nil
}

// buildInetSockets creates, binds, connects and refills every TCP and UDP
// socket, and stores each in rs.open, which closes them when the restore
// ends.
// Once every socket exists it lifts the packet drop that the dump set
// for established connections, so that their peers' retransmissions
// arrive.
func (rs *restorer) buildInetSockets() error {
	socks, embryos := rs.inetFiles()
	for _, f := range socks {
		if f.Socket.TCP != nil {
			rs.stats.ConnectionsRebuilt = true
		}
	}
	fds := map[uint64]int{}
	for _, f := range bindOrder(socks) {
		fd, err := -1, error(nil)
		if f.Socket.Peer == 0 {
			fd, err = newInetSocket(f)
		}
		if err != nil {
			return fmt.Errorf("rebuild %v socket %d: %w", f.Kind, f.ID, err)
		}
		fds[f.ID] = fd
		rs.open[f.ID] = &fdFile{fd, fmt.Sprintf("%v socket %d", f.Kind, f.ID)}
	}
	for _, e := range embryos {
		if err := reconnectPending(e, fds); err != nil {
			return fmt.Errorf("reconnect pending tcp connection %d: %w", e.ID, err)
		}
		rs.open[e.Socket.Peer].fd = fds[e.Socket.Peer]
	}
	for _, f := range socks {
		if err := refillUDP(f, socks, fds); err != nil {
			return fmt.Errorf("refill udp socket %d: %w", f.ID, err)
		}
	}
	for _, f := range socks {
		if err := finishInet(f, fds[f.ID]); err != nil {
			return fmt.Errorf("set options of %v socket %d: %w", f.Kind, f.ID, err)
		}
	}
	for _, f := range socks {
		if f.Socket.TCP != nil {
			return netlock.Unlock()
		}
	}
	return nil
}

// inetFiles returns the TCP and UDP sockets that descriptors refer to and
// the server ends of pending TCP connections (embryos), each in File.ID
// order.
func (rs *restorer) inetFiles() (socks, embryos []*snapshot.File) {
	pending := map[uint64]bool{}
	for _, f := range rs.files {
		if f.Kind == snapshot.FileTCPSocket && f.Socket != nil {
			for _, id := range f.Socket.Pending {
				pending[id] = true
			}
		}
	}
	for _, f := range rs.files {
		switch {
		case f.Kind != snapshot.FileTCPSocket && f.Kind != snapshot.FileUDPSocket || f.Socket == nil:
		case pending[f.ID]:
			embryos = append(embryos, f)
		default:
			socks = append(socks, f)
		}
	}
	byID := func(x, y *snapshot.File) int { return int(x.ID) - int(y.ID) }
	slices.SortFunc(socks, byID)
	slices.SortFunc(embryos, byID)
	return socks, embryos
}

// bindOrder returns socks with the established TCP connections last.
//
// N.B. A connection rebuilt with TCP_REPAIR binds wherever it was,
// because repair mode forces the reuse of the port, but it leaves repair
// mode with SO_REUSEADDR off until finishInet. A listener bound after it
// on a wildcard address of the same port (redis-server's 0.0.0.0:6379
// beside its accepted 10.0.2.15:6379) would then fail with EADDRINUSE,
// so the listeners and the other bound sockets go first.
func bindOrder(socks []*snapshot.File) []*snapshot.File {
	var first, last []*snapshot.File
	for _, f := range socks {
		if f.Socket.Type == unix.SOCK_STREAM && f.Socket.State == tcpEstablished {
			last = append(last, f)
		} else {
			first = append(first, f)
		}
	}
	return append(first, last...)
}

// reconnectPending connects the client of pending connection e to its
// listener again, from the client's old address, and sends what the
// server end had received, so that accept returns an equivalent
// connection. The handshake picks new sequence numbers, which no process
// observes because the dump took both ends.
func reconnectPending(e *snapshot.File, fds map[uint64]int) error {
	client, ok := fds[e.Socket.Peer]
	if !ok || client != -1 {
		return fmt.Errorf("client %d is not in the snapshot or already rebuilt", e.Socket.Peer)
	}
	local, err := parseInetAddr(e.Socket.Remote)
	if err != nil {
		return err
	}
	server, err := parseInetAddr(e.Socket.Local)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(int(e.Socket.Family), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	fds[e.Socket.Peer] = fd
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("set SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, local); err != nil {
		return fmt.Errorf("bind %x: %w", e.Socket.Remote, err)
	}
	if err := unix.Connect(fd, server); err != nil {
		return fmt.Errorf("connect to %x: %w", e.Socket.Local, err)
	}
	return sendAll(fd, joinMessages(e.Socket.Recv), nil)
}

// rebuildTCP rebuilds an established connection with TCP_REPAIR.
func rebuildTCP(s *snapshot.Socket) (int, error) {
	if s.TCP == nil {
		return -1, fmt.Errorf("established TCP socket without repair state")
	}
	local, err := parseInetAddr(s.Local)
	if err != nil {
		return -1, err
	}
	remote, err := parseInetAddr(s.Remote)
	if err != nil {
		return -1, err
	}
	saved := &tcprepair.Saved{Repair: *s.TCP, Send: joinMessages(s.Send), Recv: joinMessages(s.Recv)}
	return tcprepair.Rebuild(saved, int(s.Family), local, remote)
}

func joinMessages(msgs []snapshot.SocketMessage) []byte {
	var out []byte
	for _, m := range msgs {
		out = append(out, m.Data...)
	}
	return out
}

// newInetSocket creates the socket of f, binds it to its saved address
// and makes it listen or connects it as it was.
func newInetSocket(f *snapshot.File) (int, error) {
	s := f.Socket
	if s.Type == unix.SOCK_STREAM && s.State == tcpEstablished {
		return rebuildTCP(s)
	}
	fd, err := unix.Socket(int(s.Family), int(s.Type)|unix.SOCK_CLOEXEC, int(s.Protocol))
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := bindInet(fd, s); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func bindInet(fd int, s *snapshot.Socket) error {
	// Options that change what bind accepts go first; SO_REUSEADDR
	// also lets a TCP listener take its port back while connections
	// of the dumped one linger in TIME_WAIT, and finishInet sets the
	// saved value afterwards.
	for _, o := range s.Options {
		if isV6Only(o) || o.Level == unix.SOL_SOCKET && o.Name == unix.SO_REUSEPORT {
			if err := setOpt(fd, o); err != nil {
				return err
			}
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("set SO_REUSEADDR: %w", err)
	}
	local, err := parseInetAddr(s.Local)
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, local); err != nil {
		return fmt.Errorf("bind %x: %w", s.Local, err)
	}
	switch {
	case s.Type == unix.SOCK_STREAM && s.State == tcpListen:
		if err := unix.Listen(fd, int(s.Backlog)); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	case s.Type == unix.SOCK_DGRAM && s.State == tcpEstablished:
		remote, err := parseInetAddr(s.Remote)
		if err != nil {
			return err
		}
		if err := unix.Connect(fd, remote); err != nil {
			return fmt.Errorf("connect to %x: %w", s.Remote, err)
		}
	case s.Type == unix.SOCK_STREAM && s.State != tcpClose:
		return fmt.Errorf("TCP socket in state %d is not supported yet", s.State)
	}
	return nil
}

// tcpClose is the sk_state of a socket that is neither connected nor
// listening.
const tcpClose = 7

// refillUDP sends f's saved datagrams to it again, each from the dumped
// socket bound to its source address, so that recvfrom reports the same
// source.
func refillUDP(f *snapshot.File, socks []*snapshot.File, fds map[uint64]int) error {
	if f.Kind != snapshot.FileUDPSocket {
		return nil
	}
	to, err := parseInetAddr(f.Socket.Local)
	if err != nil {
		return err
	}
	for i, m := range f.Socket.Recv {
		from := inetByLocal(socks, m.Addr)
		if from == nil {
			return fmt.Errorf("datagram %d: no socket bound to its source %x", i+1, m.Addr)
		}
		if err := sendAll(fds[from.ID], m.Data, to); err != nil {
			return fmt.Errorf("datagram %d: %w", i+1, err)
		}
	}
	if len(f.Socket.Recv) > 0 {
		return waitQueued(fds[f.ID], len(f.Socket.Recv))
	}
	return nil
}

// waitQueued checks that the last refilled datagram reached fd's queue:
// loopback delivers it within the send call, so it must already be
// there.
func waitQueued(fd, n int) error {
	avail, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return fmt.Errorf("read SIOCINQ: %w", err)
	}
	if avail == 0 {
		return fmt.Errorf("none of %d refilled datagrams arrived", n)
	}
	return nil
}

func inetByLocal(socks []*snapshot.File, addr []byte) *snapshot.File {
	for _, f := range socks {
		if f.Kind == snapshot.FileUDPSocket && string(f.Socket.Local) == string(addr) {
			return f
		}
	}
	return nil
}

// finishInet sets the saved options and file status flags.
func finishInet(f *snapshot.File, fd int) error {
	for _, o := range f.Socket.Options {
		if isV6Only(o) {
			continue // bindInet set it; the kernel refuses it on a bound socket
		}
		if err := setOpt(fd, o); err != nil {
			return err
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(f.Flags&openFlagsMask)); err != nil {
		return fmt.Errorf("set file flags %#o: %w", f.Flags, err)
	}
	return nil
}

func isV6Only(o snapshot.SockOpt) bool {
	return o.Level == unix.IPPROTO_IPV6 && o.Name == unix.IPV6_V6ONLY
}

// setOpt sets one saved integer option. SOL_SOCKET options go through
// setUnixOpt, which handles the buffer sizes and the peek offset.
func setOpt(fd int, o snapshot.SockOpt) error {
	if o.Level == unix.SOL_SOCKET {
		return setUnixOpt(fd, o)
	}
	if len(o.Value) < 4 {
		return fmt.Errorf("socket option %d at level %d: %d-byte value", o.Name, o.Level, len(o.Value))
	}
	v := int(int32(binary.LittleEndian.Uint32(o.Value)))
	if err := unix.SetsockoptInt(fd, int(o.Level), int(o.Name), v); err != nil {
		return fmt.Errorf("set socket option %d at level %d to %d: %w", o.Name, o.Level, v, err)
	}
	return nil
}

// parseInetAddr decodes a struct sockaddr_in or sockaddr_in6.
func parseInetAddr(b []byte) (unix.Sockaddr, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("socket address of %d bytes", len(b))
	}
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < 16 {
			return nil, fmt.Errorf("sockaddr_in of %d bytes, want 16", len(b))
		}
		sa := &unix.SockaddrInet4{Port: int(binary.BigEndian.Uint16(b[2:]))}
		copy(sa.Addr[:], b[4:8])
		return sa, nil
	case unix.AF_INET6:
		if len(b) < 28 {
			return nil, fmt.Errorf("sockaddr_in6 of %d bytes, want 28", len(b))
		}
		sa := &unix.SockaddrInet6{Port: int(binary.BigEndian.Uint16(b[2:])), ZoneId: binary.LittleEndian.Uint32(b[24:])}
		copy(sa.Addr[:], b[8:24])
		return sa, nil
	}
	return nil, fmt.Errorf("socket address of family %d is not IPv4 or IPv6", binary.LittleEndian.Uint16(b))
}
