package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/tcprepair"
)

// tcpTable tracks the established TCP sockets that the dump put into
// repair mode, whether it set the packet drop, and the processes it
// sent SIGSTOP to.
type tcpTable struct {
	repaired []fdRef
	locked   bool
	stopped  []int
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
	if err := ft.stopRunning(); err != nil {
		return errors.Join(err, ft.releaseTCP())
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

// stopRunning queues SIGSTOP to every dumped process that was running.
// A process that runs while its sockets are in repair mode fails every
// read and write on them, and when it then closes one, the kernel sends
// the peer neither FIN nor reset, so the peer waits for replies that
// never come. The tracees are in a
// ptrace stop, so the signal stays pending. If the dumper dies, the
// kernel detaches them and each thread takes the SIGSTOP before it runs
// any instruction, until the caller's cleanup (ReleaseConnections, then
// SIGCONT) resumes them. readTCP runs after the last injected call, so
// no tracee takes the signal while traced.
func (ft *fileTable) stopRunning() error {
	for _, pid := range ft.running {
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			return fmt.Errorf("stop process %d before the TCP repair: %w", pid, err)
		}
		ft.tcp.stopped = append(ft.tcp.stopped, pid)
	}
	return nil
}

// releaseTCP takes every saved socket out of repair mode, lifts the
// packet drop and withdraws the SIGSTOP of stopRunning, for processes
// that go on running on this kernel. The SIGCONT that withdraws it
// discards the pending SIGSTOP when it is sent, so the processes run on
// once detached.
//
// NOTE: the processes then also receive that SIGCONT, which only a
// process with a SIGCONT handler notices.
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
	ft.tcp.repaired = nil
	if ft.tcp.locked {
		errs = append(errs, netlock.Unlock())
		ft.tcp.locked = false
	}
	for _, pid := range ft.tcp.stopped {
		if err := unix.Kill(pid, unix.SIGCONT); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("withdraw the SIGSTOP of process %d: %w", pid, err))
		}
	}
	ft.tcp.stopped = nil
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
