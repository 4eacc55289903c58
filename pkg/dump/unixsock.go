package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// tcpEstablished and tcpListen are the sk_state values that sock_diag
// reports for Unix sockets too.
const (
	tcpEstablished = 1
	tcpListen      = 10
)

// unixSockOpts are the socket options recorded for every Unix socket.
var unixSockOpts = []int{unix.SO_SNDBUF, unix.SO_RCVBUF, unix.SO_PASSCRED, unix.SO_PEEK_OFF}

// unixTable tracks the Unix sockets of a dump: the namespace-wide
// sock_diag view and which File each socket inode became.
type unixTable struct {
	diag  map[uint32]*unixDiag
	files map[uint32]*snapshot.File   // socket inode to its File
	inos  map[uint64]uint32           // File.ID to socket inode
	bound map[uint64]snapshot.FileRef // File.ID to the socket file of a path name
}

// checkSocket rejects a socket the restore cannot rebuild. It reads the
// family through a copy of the descriptor taken with pidfd_getfd.
func checkSocket(pid, fd int, object, target string) *RejectError {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: target, Reason: err.Error()}
	}
	defer unix.Close(sock)
	family, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: target, Reason: fmt.Sprintf("read SO_DOMAIN: %v", err)}
	}
	switch family {
	case unix.AF_UNIX:
		return nil
	case unix.AF_INET, unix.AF_INET6:
		return checkInet(pid, fd, object, target)
	}
	// Limitation: sockets of families other than AF_UNIX, AF_INET and
	// AF_INET6 (netlink, packet, vsock ...) are rejected; each needs its
	// own record and rebuild step.
	return notYet(pid, object, fmt.Sprintf("socket %s of family %d", target, family))
}

// recordSocket fills f with the socket behind descriptor fd of pid.
func (ft *fileTable) recordSocket(pid, fd int, f *snapshot.File) error {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return err
	}
	family, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_DOMAIN)
	unix.Close(sock)
	if err != nil {
		return fmt.Errorf("read SO_DOMAIN of fd %d in process %d: %w", fd, pid, err)
	}
	if family == unix.AF_UNIX {
		return ft.recordUnix(pid, fd, f)
	}
	return recordInet(pid, fd, family, f)
}

// readSocketQueues records the queued data of every Unix and UDP socket
// and the connections in TCP listeners' accept queues, then saves the
// established TCP connections.
func (ft *fileTable) readSocketQueues(exit Exit) error {
	if err := ft.readUnixQueues(exit); err != nil {
		return err
	}
	if err := ft.readUDPQueues(); err != nil {
		return err
	}
	if err := ft.readTCPPending(exit); err != nil {
		return err
	}
	return ft.readTCP()
}

// socketCopy returns a descriptor of the dumper that refers to the same
// open file description as descriptor fd of pid.
func socketCopy(pid, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("open pidfd of process %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	sock, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return -1, fmt.Errorf("copy fd %d of process %d: %w", fd, pid, err)
	}
	return sock, nil
}

// recordUnix fills f with the Unix socket behind descriptor fd of pid,
// except its peer and queues, which need every socket of the dump.
func (ft *fileTable) recordUnix(pid, fd int, f *snapshot.File) error {
	if ft.unixSocks == nil {
		diag, err := readUnixDiag()
		if err != nil {
			return err
		}
		ft.unixSocks = &unixTable{diag: diag, files: map[uint32]*snapshot.File{},
			inos: map[uint64]uint32{}, bound: map[uint64]snapshot.FileRef{}}
	}
	ino := uint32(f.Ref.Inode)
	d, ok := ft.unixSocks.diag[ino]
	if !ok {
		return fmt.Errorf("unix socket %d of fd %d in process %d: not found by sock_diag", ino, fd, pid)
	}

	f.Kind = snapshot.FileUnixSocket
	f.Socket = &snapshot.Socket{Family: unix.AF_UNIX, Type: int32(d.typ), State: uint32(d.state),
		Shutdown: uint32(d.shutdown)}
	if len(d.name) > 0 {
		f.Socket.Local = unixAddr(d.name)
	}
	if d.state == tcpListen {
		f.Socket.Backlog = int32(d.wqueue)
	}
	if err := readSockOpts(pid, fd, f.Socket); err != nil {
		return err
	}
	bound, err := boundFile(pid, fd, d)
	if err != nil {
		return err
	}
	ft.unixSocks.files[ino] = f
	ft.unixSocks.inos[f.ID] = ino
	ft.unixSocks.bound[f.ID] = bound
	return nil
}

// unixAddr returns a struct sockaddr_un of name as getsockname returns
// it: the family, then sun_path cut to the bound length.
func unixAddr(name []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, unix.AF_UNIX)
	return append(b, name...)
}

func readSockOpts(pid, fd int, s *snapshot.Socket) error {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	for _, opt := range unixSockOpts {
		v, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, opt)
		if err != nil {
			return fmt.Errorf("read socket option %d of fd %d in process %d: %w", opt, fd, pid, err)
		}
		s.Options = append(s.Options, snapshot.SockOpt{Level: unix.SOL_SOCKET, Name: int32(opt),
			Value: binary.LittleEndian.AppendUint32(nil, uint32(v))})
	}
	return nil
}

// boundFile returns the socket file that a path name created,
// so that the restore can bind the same name from the same directory.
// A relative name is taken relative to the process's working directory,
// and the file found there must be the socket's.
//
// Limitation: a name bound relative to another directory than the
// process's current one is rejected, and so is a name whose file was
// removed or replaced. The restore could bind it and unlink the file
// again.
func boundFile(pid, fd int, d *unixDiag) (snapshot.FileRef, error) {
	if len(d.name) == 0 || d.name[0] == 0 {
		return snapshot.FileRef{}, nil // unnamed or abstract
	}
	name := strings.TrimRight(string(d.name), "\x00")
	path := name
	if !strings.HasPrefix(name, "/") {
		cwd, err := os.Readlink(fmt.Sprintf("%s/%d/cwd", procRoot, pid))
		if err != nil {
			return snapshot.FileRef{}, fmt.Errorf("read cwd of process %d: %w", pid, err)
		}
		path = cwd + "/" + name
	}
	var st unix.Stat_t
	err := unix.Stat(fmt.Sprintf("%s/%d/root%s", procRoot, pid, path), &st)
	if err != nil || st.Ino != uint64(d.vfsIno) || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return snapshot.FileRef{}, &RejectError{PID: pid, Object: fmt.Sprintf("fd %d", fd), Kind: "unix socket " + name,
			Reason: fmt.Sprintf("bound name no longer leads to its socket file at %s", path)}
	}
	return snapshot.FileRef{Path: path, Dev: st.Dev, Inode: st.Ino, Mode: st.Mode}, nil
}

// linkUnix sets the Peer of every Unix socket, records the connections
// waiting in listeners' accept queues and replaces each socket's Ref,
// the sockfs inode that lookup compared descriptors by, with its bound
// socket file. It rejects a socket whose peer is outside the dumped processes:
// the restore creates new sockets, so that peer would lose its
// connection.
func (ft *fileTable) linkUnix() error {
	if ft.unixSocks == nil {
		return nil
	}
	var rejects []error
	pending := map[uint32]bool{} // sockets whose peer is an embryo
	for _, f := range ft.unixFiles() {
		d := ft.unixSocks.diag[ft.unixSocks.inos[f.ID]]
		for _, client := range d.icons {
			if err := ft.addPending(f, client); err != nil {
				rejects = append(rejects, err)
			}
			pending[client] = true
		}
	}
	for _, f := range ft.unixFiles() {
		ino := ft.unixSocks.inos[f.ID]
		if err := ft.linkPeer(ino, f, pending[ino]); err != nil {
			rejects = append(rejects, err)
		}
		f.Ref = ft.unixSocks.bound[f.ID]
	}
	return errors.Join(rejects...)
}

// unixFiles returns the Unix socket Files held by descriptors, in File.ID
// order.
func (ft *fileTable) unixFiles() []*snapshot.File {
	var out []*snapshot.File
	for _, f := range ft.files {
		if f.Kind == snapshot.FileUnixSocket && ft.owner[f.ID].pid != 0 {
			out = append(out, f)
		}
	}
	return out
}

// linkPeer sets f.Peer from the peer inode that sock_diag reports.
func (ft *fileTable) linkPeer(ino uint32, f *snapshot.File, pending bool) error {
	d := ft.unixSocks.diag[ino]
	if pending || d.peer == 0 {
		if d.state == tcpEstablished && !pending && f.Socket.Type != unix.SOCK_DGRAM {
			return ft.rejectUnix(f, "connected to a socket that no dumped process holds")
		}
		return nil
	}
	peer, ok := ft.unixSocks.files[d.peer]
	if !ok {
		return ft.rejectUnix(f, fmt.Sprintf("its peer socket:[%d] is held only outside the dumped processes", d.peer))
	}
	f.Socket.Peer = peer.ID
	return nil
}

// addPending records the embryo that connecting socket client created in
// listener's accept queue: the server end that accept would return.
func (ft *fileTable) addPending(listener *snapshot.File, client uint32) error {
	c, ok := ft.unixSocks.files[client]
	if !ok {
		return ft.rejectUnix(listener, fmt.Sprintf("a pending connection comes from socket:[%d], held only outside the dumped processes", client))
	}
	e := &snapshot.File{ID: uint64(len(ft.files) + 1), Kind: snapshot.FileUnixSocket, Flags: unix.O_RDWR,
		Socket: &snapshot.Socket{Family: unix.AF_UNIX, Type: listener.Socket.Type, State: tcpEstablished,
			Local: listener.Socket.Local, Peer: c.ID}}
	ft.files = append(ft.files, e)
	c.Socket.Peer = e.ID
	listener.Socket.Pending = append(listener.Socket.Pending, e.ID)
	return nil
}

func (ft *fileTable) rejectUnix(f *snapshot.File, reason string) *RejectError {
	o := ft.owner[f.ID]
	return &RejectError{PID: o.pid, Object: fmt.Sprintf("fd %d", o.fd),
		Kind: fmt.Sprintf("unix socket:[%d]", ft.unixSocks.inos[f.ID]), Reason: reason}
}

// readUnixQueues records the receive queue of every Unix socket held by
// a descriptor, without consuming it, and the data that waits in pending
// connections.
func (ft *fileTable) readUnixQueues(exit Exit) error {
	if ft.unixSocks == nil {
		return nil
	}
	for _, f := range ft.unixFiles() {
		if f.Socket.State == tcpListen {
			continue
		}
		o := ft.owner[f.ID]
		if err := ft.readUnixQueue(o.pid, o.fd, f); err != nil {
			return err
		}
	}
	for _, f := range ft.unixFiles() {
		if len(f.Socket.Pending) > 0 {
			if err := ft.readPending(f, exit); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ft *fileTable) readUnixQueue(pid, fd int, f *snapshot.File) error {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	msgs, err := peekQueue(sock, f.Socket.Type)
	if errors.Is(err, errFilesInFlight) {
		return ft.rejectUnix(f, "descriptors in flight (SCM_RIGHTS) in its receive queue")
	}
	if err != nil {
		return fmt.Errorf("read queue of fd %d in process %d: %w", fd, pid, err)
	}
	f.Socket.Recv = msgs
	return ft.checkSenders(f)
}

// checkSenders rejects a datagram whose sender is bound to a name no
// dumped socket has: the restore must send it again from that name.
func (ft *fileTable) checkSenders(f *snapshot.File) error {
	for _, m := range f.Socket.Recv {
		if len(m.Addr) > 2 && ft.unixByName(m.Addr) == nil {
			return ft.rejectUnix(f, fmt.Sprintf("a queued datagram comes from %q, which no dumped socket is bound to", m.Addr[2:]))
		}
	}
	return nil
}

func (ft *fileTable) unixByName(addr []byte) *snapshot.File {
	for _, f := range ft.unixSocks.files {
		if string(f.Socket.Local) == string(addr) {
			return f
		}
	}
	return nil
}

// errFilesInFlight reports descriptors passed with SCM_RIGHTS in a queue.
var errFilesInFlight = errors.New("descriptors in flight")

// Bounds of one queue copy.
const (
	maxPeekMessages = 1 << 16
	peekBufferSize  = 4 << 20 // larger than any Unix datagram under the default wmem_max
)

// peekQueue copies the receive queue of sock with MSG_PEEK, advancing
// SO_PEEK_OFF from 0 so that each call returns the next data, and puts
// the socket's own peek offset back afterwards. A stream's data comes
// back as one message.
//
// Limitation: out-of-band data (MSG_OOB) and the credentials of senders
// (SCM_CREDENTIALS) are not recorded; restored data carries the
// restorer's credentials.
func peekQueue(sock int, typ int32) (msgs []snapshot.SocketMessage, err error) {
	old, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("read SO_PEEK_OFF: %w", err)
	}
	if err := unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("set SO_PEEK_OFF: %w", err)
	}
	defer func() {
		if serr := unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF, old); serr != nil {
			err = errors.Join(err, fmt.Errorf("put SO_PEEK_OFF back to %d: %w", old, serr))
		}
	}()
	buf := make([]byte, peekBufferSize)
	var stream []byte
	for range maxPeekMessages {
		m, n, err := peekOne(sock, buf)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return nil, err
		}
		if typ == unix.SOCK_STREAM {
			stream = append(stream, buf[:n]...)
			continue
		}
		msgs = append(msgs, m)
	}
	if len(stream) > 0 {
		msgs = []snapshot.SocketMessage{{Data: stream}}
	}
	return msgs, nil
}

// peekOne peeks at the next message of sock. A stream socket at its end
// of data reports EAGAIN, or 0 bytes after a shutdown, which also ends
// the copy.
func peekOne(sock int, buf []byte) (snapshot.SocketMessage, int, error) {
	oob := make([]byte, unix.CmsgSpace(4*64))
	n, oobn, flags, from, err := unix.Recvmsg(sock, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return snapshot.SocketMessage{}, 0, err
	}
	if err := checkControl(oob[:oobn], flags); err != nil {
		return snapshot.SocketMessage{}, 0, err
	}
	if flags&unix.MSG_TRUNC != 0 {
		return snapshot.SocketMessage{}, 0, fmt.Errorf("datagram larger than %d bytes", len(buf))
	}
	m := snapshot.SocketMessage{Data: append([]byte(nil), buf[:n]...)}
	switch sa := from.(type) {
	case *unix.SockaddrUnix:
		if sa.Name != "" {
			m.Addr = unixAddr(sockaddrName(sa.Name))
		}
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
		m.Addr, _ = inetAddr(sa)
	}
	if n == 0 && m.Addr == nil {
		return m, 0, unix.EAGAIN // end of a shut-down stream
	}
	return m, n, nil
}

// sockaddrName turns golang.org/x/sys/unix's spelling of a Unix name
// back into the kernel's: "@name" is an abstract name with a leading
// NUL, and a path name carries its trailing NUL.
func sockaddrName(name string) []byte {
	if strings.HasPrefix(name, "@") {
		return append([]byte{0}, name[1:]...)
	}
	return append([]byte(name), 0)
}

// checkControl closes descriptors that a peek passed along and reports
// them as errFilesInFlight.
func checkControl(oob []byte, flags int) error {
	if flags&unix.MSG_CTRUNC != 0 {
		return errFilesInFlight
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("parse control messages: %w", err)
	}
	found := false
	for _, c := range cmsgs {
		if c.Header.Level != unix.SOL_SOCKET || c.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, _ := unix.ParseUnixRights(&c)
		for _, fd := range fds {
			unix.Close(fd)
		}
		found = true
	}
	if found {
		return errFilesInFlight
	}
	return nil
}

// readPending records the data that connecting sockets wrote into the
// embryos of listener f. The only way to read an embryo's queue is to
// accept it, which takes the connection away from the process, so this
// happens only when the dumped processes are killed afterwards.
//
// Limitation: a pending connection with queued data is rejected unless
// the dump kills the processes (Exit: ExitKill), because accepting it
// changes the tracee. If such a dump fails after this step, the
// processes keep running without those connections.
func (ft *fileTable) readPending(f *snapshot.File, exit Exit) error {
	last := -1 // index of the last embryo with data
	for i, id := range f.Socket.Pending {
		queued, err := ft.clientOutq(ft.byID(ft.byID(id).Socket.Peer))
		if err != nil {
			return err
		}
		if queued > 0 {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	if exit != ExitKill {
		re := ft.rejectUnix(f, "a pending connection has data queued, which only a dump that kills the processes may read")
		re.Transient = true
		return re
	}
	o := ft.owner[f.ID]
	listener, err := socketCopy(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer unix.Close(listener)
	for _, id := range f.Socket.Pending[:last+1] {
		if err := acceptPending(listener, ft.byID(id)); err != nil {
			return fmt.Errorf("read pending connection of fd %d in process %d: %w", o.fd, o.pid, err)
		}
	}
	return nil
}

// clientOutq returns the bytes that connecting socket c sent and its
// peer has not read, which the kernel charges to c.
func (ft *fileTable) clientOutq(c *snapshot.File) (int, error) {
	o := ft.owner[c.ID]
	sock, err := socketCopy(o.pid, o.fd)
	if err != nil {
		return 0, err
	}
	defer unix.Close(sock)
	n, err := unix.IoctlGetInt(sock, unix.SIOCOUTQ)
	if err != nil {
		return 0, fmt.Errorf("read SIOCOUTQ of fd %d in process %d: %w", o.fd, o.pid, err)
	}
	return n, nil
}

// acceptPending accepts the oldest pending connection of listener and
// records its queued data in embryo e.
func acceptPending(listener int, e *snapshot.File) error {
	fds := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err != nil || n != 1 {
		return fmt.Errorf("poll listener: %d ready, %v", n, err)
	}
	conn, _, err := unix.Accept4(listener, unix.SOCK_CLOEXEC)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer unix.Close(conn)
	msgs, err := peekQueue(conn, e.Socket.Type)
	if err != nil {
		return err
	}
	e.Socket.Recv = msgs
	return nil
}

func closeFD(fd int) { unix.Close(fd) }

func (ft *fileTable) byID(id uint64) *snapshot.File {
	if id == 0 || id > uint64(len(ft.files)) {
		return nil
	}
	return ft.files[id-1]
}
