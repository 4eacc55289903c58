package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// tcpClose is the sk_state of a socket that is neither connected nor
// listening.
const tcpClose = 7

// sockOpt names one option that the dump records for a socket.
type sockOpt struct{ level, name int }

// inetSockOpts are the options recorded for every TCP and UDP socket.
var inetSockOpts = []sockOpt{
	{unix.SOL_SOCKET, unix.SO_REUSEADDR}, {unix.SOL_SOCKET, unix.SO_REUSEPORT},
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE}, {unix.SOL_SOCKET, unix.SO_BROADCAST},
	{unix.SOL_SOCKET, unix.SO_SNDBUF}, {unix.SOL_SOCKET, unix.SO_RCVBUF},
	{unix.SOL_SOCKET, unix.SO_PEEK_OFF},
}

// tcpSockOpts are recorded for TCP sockets on top of inetSockOpts.
var tcpSockOpts = []sockOpt{
	{unix.IPPROTO_TCP, unix.TCP_NODELAY}, {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}, {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
}

// checkInet rejects a TCP or UDP socket that the restore cannot rebuild:
// a TCP socket that is neither unconnected, listening nor established.
// readTCPPending checks the connections in a listener's accept queue.
func checkInet(pid, fd int, object, target string) *RejectError {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: target, Reason: err.Error()}
	}
	defer unix.Close(sock)
	typ, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: target, Reason: fmt.Sprintf("read SO_TYPE: %v", err)}
	}
	proto, _ := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	switch {
	case typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
		return nil
	case typ != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP:
		return notYet(pid, object, fmt.Sprintf("socket %s of type %d, protocol %d", target, typ, proto))
	}
	info, err := unix.GetsockoptTCPInfo(sock, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: target, Reason: fmt.Sprintf("read TCP_INFO: %v", err)}
	}
	switch {
	case info.State != tcpListen && info.State != tcpClose && info.State != tcpEstablished:
		// Limitation: TCP sockets in a handshake or shutting down
		// (SYN_SENT, FIN_WAIT1, CLOSE_WAIT ...) are rejected; TCP_REPAIR
		// rebuilds only established connections and unconnected sockets.
		return notYet(pid, object, fmt.Sprintf("TCP connection %s in state %d", target, info.State))
	}
	return nil
}

// recordInet fills f with the TCP or UDP socket behind descriptor fd of
// pid: addresses, options and the listen backlog. readUDPQueues and
// readTCP add the queued data later.
func recordInet(pid, fd int, family int, f *snapshot.File) error {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	typ, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("read SO_TYPE of fd %d in process %d: %w", fd, pid, err)
	}

	s := &snapshot.Socket{Family: int32(family), Type: int32(typ), State: tcpClose}
	f.Socket, f.Ref = s, snapshot.FileRef{}
	if s.Local, err = sockName(sock, unix.Getsockname); err != nil {
		return fmt.Errorf("read address of fd %d in process %d: %w", fd, pid, err)
	}
	if s.Remote, err = sockName(sock, unix.Getpeername); err != nil && !errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("read peer address of fd %d in process %d: %w", fd, pid, err)
	}

	opts := inetSockOpts
	if typ == unix.SOCK_STREAM {
		f.Kind, s.Protocol = snapshot.FileTCPSocket, unix.IPPROTO_TCP
		opts = append(opts[:len(opts):len(opts)], tcpSockOpts...)
		if err := recordListen(sock, s); err != nil {
			return fmt.Errorf("read TCP state of fd %d in process %d: %w", fd, pid, err)
		}
	} else {
		f.Kind, s.Protocol = snapshot.FileUDPSocket, unix.IPPROTO_UDP
		if s.Remote != nil {
			s.State = tcpEstablished
		}
	}
	if family == unix.AF_INET6 {
		opts = append(opts[:len(opts):len(opts)], sockOpt{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY})
	}
	if s.Options, err = readOpts(sock, opts); err != nil {
		return fmt.Errorf("read options of fd %d in process %d: %w", fd, pid, err)
	}
	return nil
}

func recordListen(sock int, s *snapshot.Socket) error {
	info, err := unix.GetsockoptTCPInfo(sock, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return err
	}
	s.State = uint32(info.State)
	if info.State == tcpListen {
		s.Backlog = int32(info.Sacked) // tcpi_sacked holds sk_max_ack_backlog for a listener
	}
	return nil
}

func readOpts(sock int, opts []sockOpt) ([]snapshot.SockOpt, error) {
	var out []snapshot.SockOpt
	for _, o := range opts {
		v, err := unix.GetsockoptInt(sock, o.level, o.name)
		if o.level == unix.SOL_SOCKET && o.name == unix.SO_PEEK_OFF && errors.Is(err, unix.EOPNOTSUPP) {
			// N.B. Older kernels (6.1 among them, unlike 6.12) have
			// no peek offset for TCP sockets, so no process can have
			// set one and there is nothing to record.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getsockopt(%d, %d): %w", o.level, o.name, err)
		}
		out = append(out, snapshot.SockOpt{Level: int32(o.level), Name: int32(o.name),
			Value: binary.LittleEndian.AppendUint32(nil, uint32(v))})
	}
	return out, nil
}

// sockName returns the address that get returns for sock as the kernel's
// struct sockaddr_in or sockaddr_in6.
func sockName(sock int, get func(int) (unix.Sockaddr, error)) ([]byte, error) {
	sa, err := get(sock)
	if err != nil {
		return nil, err
	}
	return inetAddr(sa)
}

// inetAddr encodes sa as struct sockaddr_in (16 bytes) or struct
// sockaddr_in6 (28 bytes), port in network byte order.
func inetAddr(sa unix.Sockaddr) ([]byte, error) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		b := make([]byte, 16)
		binary.LittleEndian.PutUint16(b[0:], unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], uint16(a.Port))
		copy(b[4:], a.Addr[:])
		return b, nil
	case *unix.SockaddrInet6:
		b := make([]byte, 28)
		binary.LittleEndian.PutUint16(b[0:], unix.AF_INET6)
		binary.BigEndian.PutUint16(b[2:], uint16(a.Port))
		copy(b[8:], a.Addr[:])
		binary.LittleEndian.PutUint32(b[24:], a.ZoneId)
		return b, nil
	}
	return nil, fmt.Errorf("address %T is not an IPv4 or IPv6 address", sa)
}

// readUDPQueues records the datagrams queued on every UDP socket, with
// MSG_PEEK so that the tracees keep them.
//
// Limitation: a datagram is kept only when a dumped socket is bound to
// its source address, because the restore sends it again from that
// socket; datagrams from other hosts or processes are rejected.
// Injecting them with IP_TRANSPARENT or a raw socket would lift it.
func (ft *fileTable) readUDPQueues() error {
	for _, f := range ft.files {
		if f.Kind != snapshot.FileUDPSocket {
			continue
		}
		o := ft.owner[f.ID]
		sock, err := socketCopy(o.pid, o.fd)
		if err != nil {
			return err
		}
		f.Socket.Recv, err = peekDatagrams(sock)
		unix.Close(sock)
		if err != nil {
			return fmt.Errorf("read queue of fd %d in process %d: %w", o.fd, o.pid, err)
		}
		if err := ft.checkUDPSenders(f); err != nil {
			return err
		}
	}
	return nil
}

// peekDatagrams copies the receive queue of a UDP socket.
func peekDatagrams(sock int) ([]snapshot.SocketMessage, error) {
	msgs, err := peekQueue(sock, unix.SOCK_DGRAM)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if m.Addr == nil {
			return nil, fmt.Errorf("datagram %d has no source address", i+1)
		}
	}
	return msgs, nil
}

func (ft *fileTable) checkUDPSenders(f *snapshot.File) error {
	for _, m := range f.Socket.Recv {
		if ft.inetByLocal(m.Addr) == nil {
			o := ft.owner[f.ID]
			return &RejectError{PID: o.pid, Object: fmt.Sprintf("fd %d", o.fd), Kind: "udp socket",
				Reason: fmt.Sprintf("a queued datagram comes from %x, which no dumped socket is bound to", m.Addr)}
		}
	}
	return nil
}

func (ft *fileTable) inetByLocal(addr []byte) *snapshot.File {
	for _, f := range ft.files {
		if f.Kind == snapshot.FileUDPSocket && string(f.Socket.Local) == string(addr) {
			return f
		}
	}
	return nil
}
