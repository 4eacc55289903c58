package dump

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// maxPendingRead bounds the data read from one pending TCP connection.
const maxPendingRead = 64 << 20

// readTCPPending records the connections waiting in the accept queues of
// TCP listeners. No descriptor reaches the server end of such a
// connection, and TCP_REPAIR cannot put a rebuilt socket back into an
// accept queue. So the dump accepts it and reads what the client sent,
// and the restore connects the client again with a fresh handshake. The
// new handshake goes unnoticed only when the client is dumped too.
// Accepting takes the connection away from the process, so only a dump
// that kills the processes may do it.
//
// Limitation: a pending connection from a client outside the dumped
// processes is rejected, and so is one whose client still has data not
// acknowledged (which needs the client's send queue through TCP_REPAIR).
func (ft *fileTable) readTCPPending(exit Exit) error {
	for _, f := range ft.files {
		if f.Kind != snapshot.FileTCPSocket || f.Socket.State != tcpListen || ft.owner[f.ID].pid == 0 {
			continue
		}
		if err := ft.acceptTCPPending(f, exit); err != nil {
			return err
		}
	}
	return nil
}

func (ft *fileTable) acceptTCPPending(f *snapshot.File, exit Exit) error {
	o := ft.owner[f.ID]
	listener, err := socketCopy(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer closeFD(listener)
	info, err := unix.GetsockoptTCPInfo(listener, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return fmt.Errorf("read TCP_INFO of fd %d in process %d: %w", o.fd, o.pid, err)
	}
	if info.Unacked == 0 {
		return nil
	}
	if exit != ExitKill {
		return &RejectError{PID: o.pid, Object: fmt.Sprintf("fd %d", o.fd), Kind: "tcp listener",
			Reason:    fmt.Sprintf("%d connections wait to be accepted, which only a dump that kills the processes may take", info.Unacked),
			Transient: true}
	}
	for range info.Unacked {
		if err := ft.acceptOneTCP(f, listener); err != nil {
			return fmt.Errorf("take pending connection of fd %d in process %d: %w", o.fd, o.pid, err)
		}
	}
	return nil
}

// acceptOneTCP accepts the oldest pending connection of listener f and
// records it as an embryo File whose Peer is the dumped client.
func (ft *fileTable) acceptOneTCP(f *snapshot.File, listener int) error {
	conn, _, err := unix.Accept4(listener, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	// Closed in repair mode, the server end vanishes at once: no FIN to
	// the client and no orphan that keeps the listener's port from the
	// restore.
	defer closeSilently(conn)

	local, err := sockName(conn, unix.Getsockname)
	if err != nil {
		return err
	}
	remote, err := sockName(conn, unix.Getpeername)
	if err != nil {
		return err
	}
	client := ft.tcpByAddrs(remote, local)
	if client == nil {
		o := ft.owner[f.ID]
		return &RejectError{PID: o.pid, Object: fmt.Sprintf("fd %d", o.fd), Kind: "tcp listener",
			Reason: fmt.Sprintf("a pending connection comes from %x, which no dumped socket is", remote)}
	}
	if err := ft.checkClientAcked(client); err != nil {
		return err
	}
	if err := ft.holdClient(client); err != nil {
		return err
	}
	data, err := readAll(conn)
	if err != nil {
		return err
	}

	e := &snapshot.File{ID: uint64(len(ft.files) + 1), Kind: snapshot.FileTCPSocket, Flags: unix.O_RDWR,
		Socket: &snapshot.Socket{Family: f.Socket.Family, Type: unix.SOCK_STREAM, Protocol: unix.IPPROTO_TCP,
			State: tcpEstablished, Local: local, Remote: remote, Peer: client.ID}}
	if len(data) > 0 {
		e.Socket.Recv = []snapshot.SocketMessage{{Data: data}}
	}
	ft.files = append(ft.files, e)
	client.Socket.Peer = e.ID
	f.Socket.Pending = append(f.Socket.Pending, e.ID)
	return nil
}

// tcpByAddrs returns the dumped TCP socket bound to local and connected
// to remote.
func (ft *fileTable) tcpByAddrs(local, remote []byte) *snapshot.File {
	for _, f := range ft.files {
		if f.Kind == snapshot.FileTCPSocket && ft.owner[f.ID].pid != 0 &&
			string(f.Socket.Local) == string(local) && string(f.Socket.Remote) == string(remote) {
			return f
		}
	}
	return nil
}

func (ft *fileTable) checkClientAcked(c *snapshot.File) error {
	o := ft.owner[c.ID]
	sock, err := socketCopy(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer closeFD(sock)
	outq, err := unix.IoctlGetInt(sock, unix.SIOCOUTQ)
	if err != nil {
		return fmt.Errorf("read SIOCOUTQ of fd %d in process %d: %w", o.fd, o.pid, err)
	}
	if outq > 0 {
		return &RejectError{PID: o.pid, Object: fmt.Sprintf("fd %d", o.fd), Kind: "tcp socket",
			Reason: fmt.Sprintf("client of a pending connection with %d bytes not acknowledged", outq)}
	}
	return nil
}

// readAll reads what a non-blocking socket holds, up to maxPendingRead.
func readAll(sock int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 1<<16)
	for len(out) < maxPendingRead {
		n, _, err := unix.Recvfrom(sock, buf, 0)
		if errors.Is(err, unix.EAGAIN) || n == 0 && err == nil {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read pending connection: %w", err)
		}
		out = append(out, buf[:n]...)
	}
	return nil, fmt.Errorf("read pending connection: more than %d bytes", maxPendingRead)
}

// holdClient puts client c of a pending connection into repair mode, so
// that killing its process closes it without a packet and frees its
// address for the restore's new connection; releaseTCP takes it out
// again if the processes run on.
func (ft *fileTable) holdClient(c *snapshot.File) error {
	o := ft.owner[c.ID]
	sock, err := socketCopy(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer closeFD(sock)
	if err := unix.SetsockoptInt(sock, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return fmt.Errorf("enter TCP_REPAIR on fd %d of process %d: %w", o.fd, o.pid, err)
	}
	if ft.tcp == nil {
		ft.tcp = &tcpTable{}
	}
	ft.tcp.repaired = append(ft.tcp.repaired, o)
	return nil
}

func closeSilently(fd int) {
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
	unix.Close(fd)
}
