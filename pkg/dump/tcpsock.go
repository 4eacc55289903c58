package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/tcprepair"
)

// errStillRepaired marks an error of releaseTCP after which a socket is
// still in repair mode, such as when the dumper's cgroup is out of
// memory.
var errStillRepaired = errors.New("TCP connections still in repair mode")

// tcpTable tracks the established TCP sockets that the dump put into
// repair mode and whether it set the packet drop.
type tcpTable struct {
	repaired []fdRef
	locked   bool
}

// readTCP drops the packets of every established TCP connection of the
// dump, then saves each connection with TCP_REPAIR. The sockets stay in
// repair mode, so killing their processes sends nothing to the peers.
// The drop stays until the restore lifts it. releaseTCP undoes both when
// the processes run on instead, and readTCP undoes both itself on error.
func (ft *fileTable) readTCP() error {
	var files []*snapshot.File
	var conns []netlock.Conn
	for _, f := range ft.files {
		if f.Kind != snapshot.FileTCPSocket || f.Socket.State != tcpEstablished || f.Socket.Peer != 0 {
			continue // not established, or a client or server end of a pending connection
		}
		c, err := lockConn(f.Socket)
		if err != nil {
			return err
		}
		files, conns = append(files, f), append(conns, c)
	}
	if len(files) == 0 {
		return nil
	}
	if ft.tcp == nil {
		ft.tcp = &tcpTable{}
	}
	if err := netlock.Lock(conns); err != nil {
		return errors.Join(err, ft.releaseTCP())
	}
	ft.tcp.locked = true
	for _, f := range files {
		if err := ft.saveTCP(f); err != nil {
			return errors.Join(err, ft.releaseTCP())
		}
	}
	return nil
}

func (ft *fileTable) saveTCP(f *snapshot.File) error {
	o := ft.owner[f.ID]
	sock, err := socketCopy(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer closeFD(sock)
	saved, err := tcprepair.Save(sock)
	if err != nil {
		return fmt.Errorf("save TCP connection of fd %d in process %d: %w", o.fd, o.pid, err)
	}
	ft.tcp.repaired = append(ft.tcp.repaired, o)
	f.Socket.TCP = &saved.Repair
	if len(saved.Send) > 0 {
		f.Socket.Send = []snapshot.SocketMessage{{Data: saved.Send}}
	}
	if len(saved.Recv) > 0 {
		f.Socket.Recv = []snapshot.SocketMessage{{Data: saved.Recv}}
	}
	return nil
}

// releaseTCP takes every saved socket out of repair mode and lifts the
// packet drop, for processes that go on running on this kernel. The
// hold's SIGCONT comes after it (hold.release). A socket left in repair
// mode makes the error wrap errStillRepaired.
func (ft *fileTable) releaseTCP() error {
	if ft.tcp == nil {
		return nil
	}
	var errs []error
	for _, o := range ft.tcp.repaired {
		sock, err := socketCopy(o.pid, o.fd)
		if err == nil {
			err = tcprepair.Leave(sock)
			closeFD(sock)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("release fd %d of process %d: %w", o.fd, o.pid, err))
		}
	}
	held := len(errs) > 0
	ft.tcp.repaired = nil
	if ft.tcp.locked {
		errs = append(errs, netlock.Unlock())
		ft.tcp.locked = false
	}
	if held {
		return fmt.Errorf("%w: %w", errStillRepaired, errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// lockConn returns the connection of s for the packet drop.
func lockConn(s *snapshot.Socket) (netlock.Conn, error) {
	local, err := addrPort(s.Local)
	if err != nil {
		return netlock.Conn{}, err
	}
	remote, err := addrPort(s.Remote)
	if err != nil {
		return netlock.Conn{}, err
	}
	return netlock.Conn{Local: local, Remote: remote}, nil
}

// addrPort decodes a struct sockaddr_in or sockaddr_in6 as inetAddr
// encodes it.
func addrPort(b []byte) (netip.AddrPort, error) {
	switch {
	case len(b) == 16:
		a := netip.AddrFrom4([4]byte(b[4:8]))
		return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[2:])), nil
	case len(b) == 28:
		a := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[2:])), nil
	}
	return netip.AddrPort{}, fmt.Errorf("socket address of %d bytes is not IPv4 or IPv6", len(b))
}
