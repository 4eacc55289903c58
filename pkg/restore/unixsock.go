package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// refillSendBuffer is the send buffer a socket gets while the restore
// writes queued data through it, so that data which filled a smaller
// buffer in many writes fits again in a few. The saved size comes back
// afterwards.
const refillSendBuffer = 16 << 20

// tcpListen is the sk_state of a listening socket, which the kernel uses
// for Unix sockets too.
const tcpListen = 10

// unixBuild rebuilds every Unix socket of the snapshot at once, because
// pairs, connections and queued data link them to each other.
type unixBuild struct {
	rs      *restorer
	socks   []*snapshot.File          // every Unix socket but embryos, in File.ID order
	byID    map[uint64]*snapshot.File // every Unix socket, embryos included
	embryo  map[uint64]bool           // server ends of pending connections
	fds     map[uint64]int            // File.ID to the restorer's descriptor
	listens map[string]bool           // names of listening sockets
}

// openUnixSocket returns the restorer's descriptor of Unix socket sf,
// rebuilding all Unix sockets of the snapshot on first use.
func (rs *restorer) openUnixSocket(sf *snapshot.File) (*fdFile, error) {
	if sf.Socket == nil {
		return nil, fmt.Errorf("unix socket file %d has no socket record", sf.ID)
	}
	if err := rs.buildUnixSockets(); err != nil {
		return nil, err
	}
	f, ok := rs.open[sf.ID]
	if !ok {
		return nil, fmt.Errorf("unix socket file %d was not rebuilt", sf.ID)
	}
	return f, nil
}

// buildUnixSockets creates, names, connects and refills every Unix
// socket, and stores each in rs.open, which closes them when the restore
// ends.
func (rs *restorer) buildUnixSockets() error {
	b := newUnixBuild(rs)
	steps := []struct {
		what string
		do   func(*snapshot.File) error
	}{
		{"create", b.create},
		{"widen the send buffer of", b.widenSendBuffer},
		{"bind", b.bind},
		{"listen", b.listen},
		{"connect", b.connect},
		{"queue pending connections of", b.queuePending},
		{"refill", b.refill},
		{"set options of", b.finish},
	}
	for _, step := range steps {
		for _, f := range b.socks {
			if err := step.do(f); err != nil {
				return fmt.Errorf("%s unix socket %d: %w", step.what, f.ID, err)
			}
		}
	}
	return nil
}

func newUnixBuild(rs *restorer) *unixBuild {
	b := &unixBuild{rs: rs, byID: map[uint64]*snapshot.File{}, embryo: map[uint64]bool{},
		fds: map[uint64]int{}, listens: map[string]bool{}}
	for _, f := range rs.files {
		if f.Kind != snapshot.FileUnixSocket || f.Socket == nil {
			continue
		}
		b.byID[f.ID] = f
		for _, id := range f.Socket.Pending {
			b.embryo[id] = true
		}
		if f.Socket.State == tcpListen {
			b.listens[string(f.Socket.Local)] = true
		}
	}
	for id, f := range b.byID {
		if !b.embryo[id] {
			b.socks = append(b.socks, f)
		}
	}
	slices.SortFunc(b.socks, func(x, y *snapshot.File) int { return int(x.ID) - int(y.ID) })
	return b
}

// pairPeer returns the peer of f when the two are connected to each
// other, which socketpair recreates.
func (b *unixBuild) pairPeer(f *snapshot.File) *snapshot.File {
	p := b.byID[f.Socket.Peer]
	if p == nil || b.embryo[p.ID] || p.Socket.Peer != f.ID {
		return nil
	}
	return p
}

func (b *unixBuild) keep(f *snapshot.File, fd int) {
	b.fds[f.ID] = fd
	b.rs.open[f.ID] = &fdFile{fd, fmt.Sprintf("unix socket %d", f.ID)}
}

// create makes the socket of f, and its peer's with it for a pair.
func (b *unixBuild) create(f *snapshot.File) error {
	if _, ok := b.fds[f.ID]; ok {
		return nil
	}
	typ := int(f.Socket.Type) | unix.SOCK_CLOEXEC
	if p := b.pairPeer(f); p != nil {
		fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
		if err != nil {
			return fmt.Errorf("socketpair: %w", err)
		}
		b.keep(f, fds[0])
		b.keep(p, fds[1])
		return nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	b.keep(f, fd)
	return nil
}

func (b *unixBuild) widenSendBuffer(f *snapshot.File) error {
	return unix.SetsockoptInt(b.fds[f.ID], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, refillSendBuffer)
}

// bind gives f its saved name. A path name is bound from the directory
// it was bound relative to, after the stale socket file of the dumped
// socket is removed.
//
// Limitation: a connected socket that carries a listener's name, as
// accept returns it, stays unnamed because the listener holds the name,
// so getsockname on it returns an empty name. Rebuilding it by connecting to
// the listener and accepting would lift it.
func (b *unixBuild) bind(f *snapshot.File) error {
	local := f.Socket.Local
	if len(local) <= 2 || (f.Socket.State != tcpListen && b.listens[string(local)]) {
		return nil
	}
	name := local[2:]
	if name[0] == 0 {
		return unix.Bind(b.fds[f.ID], &unix.SockaddrUnix{Name: "@" + string(name[1:])})
	}
	path := strings.TrimRight(string(name), "\x00")
	if err := removeStaleSocket(f.Ref.Path); err != nil {
		return err
	}
	dir, ok := strings.CutSuffix(f.Ref.Path, "/"+path)
	if strings.HasPrefix(path, "/") {
		dir, ok = "/", f.Ref.Path == path
	}
	if !ok {
		return fmt.Errorf("bind %s: socket file %q is not that name", path, f.Ref.Path)
	}
	if err := bindFrom(dir, b.fds[f.ID], &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("bind %s in %s: %w", path, dir, err)
	}
	if err := unix.Chmod(f.Ref.Path, f.Ref.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Ref.Path, err)
	}
	return nil
}

// removeStaleSocket removes the socket file at path, which the dumped
// socket left behind. Anything else at path is an error: the name was
// taken over.
func removeStaleSocket(path string) error {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("bind %s: the path exists and is not a socket (mode %#o)", path, st.Mode)
	}
	if err := unix.Unlink(path); err != nil {
		return &os.PathError{Op: "remove stale socket", Path: path, Err: err}
	}
	return nil
}

// bindFrom binds fd to sa with dir as the working directory, so that a
// relative name resolves as it did at the dump. It runs on a thread of
// its own whose working directory no other goroutine shares: the thread
// unshares its fs_struct and, still locked, ends with the goroutine.
func bindFrom(dir string, fd int, sa unix.Sockaddr) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, so the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		errc <- unix.Bind(fd, sa)
	}()
	return <-errc
}

func (b *unixBuild) listen(f *snapshot.File) error {
	if f.Socket.State != tcpListen {
		return nil
	}
	return unix.Listen(b.fds[f.ID], int(f.Socket.Backlog))
}

// connect connects a datagram socket to its peer unless a socketpair
// already did.
func (b *unixBuild) connect(f *snapshot.File) error {
	p := b.byID[f.Socket.Peer]
	if f.Socket.Type != unix.SOCK_DGRAM || p == nil || b.pairPeer(f) != nil {
		return nil
	}
	sa, err := reachAddr(p)
	if err != nil {
		return err
	}
	return unix.Connect(b.fds[f.ID], sa)
}

// reachAddr returns an address that reaches f: its abstract name, or the
// absolute path of its socket file, which reaches it from any directory.
// Senders see f's own name either way.
func reachAddr(f *snapshot.File) (unix.Sockaddr, error) {
	local := f.Socket.Local
	switch {
	case len(local) <= 2:
		return nil, fmt.Errorf("unix socket %d has no name to reach it by", f.ID)
	case local[2] == 0:
		return &unix.SockaddrUnix{Name: "@" + string(local[3:])}, nil
	}
	return &unix.SockaddrUnix{Name: f.Ref.Path}, nil
}

// queuePending connects the client of each pending connection of
// listener f again, oldest first, and refills what the client had sent.
func (b *unixBuild) queuePending(f *snapshot.File) error {
	if len(f.Socket.Pending) == 0 {
		return nil
	}
	sa, err := reachAddr(f)
	if err != nil {
		return err
	}
	for _, id := range f.Socket.Pending {
		e := b.byID[id]
		if e == nil {
			return fmt.Errorf("pending connection %d is not in the snapshot", id)
		}
		client, ok := b.fds[e.Socket.Peer]
		if !ok {
			return fmt.Errorf("client %d of pending connection %d was not rebuilt", e.Socket.Peer, id)
		}
		if err := unix.Connect(client, sa); err != nil {
			return fmt.Errorf("connect client %d: %w", e.Socket.Peer, err)
		}
		for _, m := range e.Socket.Recv {
			if err := sendAll(client, m.Data, nil); err != nil {
				return fmt.Errorf("refill pending connection %d: %w", id, err)
			}
		}
	}
	return nil
}

// refill sends f's saved receive queue to it again, each message from a
// socket that gives it the same sender address.
func (b *unixBuild) refill(f *snapshot.File) error {
	for i, m := range f.Socket.Recv {
		if err := b.resend(f, m); err != nil {
			return fmt.Errorf("message %d of %d: %w", i+1, len(f.Socket.Recv), err)
		}
	}
	return nil
}

func (b *unixBuild) resend(f *snapshot.File, m snapshot.SocketMessage) error {
	if f.Socket.Type != unix.SOCK_DGRAM {
		sender, ok := b.fds[f.Socket.Peer]
		if !ok {
			return errors.New("queued data but no peer to send it from")
		}
		return sendAll(sender, m.Data, nil)
	}
	from := b.byID[f.Socket.Peer]
	if len(m.Addr) > 2 {
		from = b.byName(m.Addr)
		if from == nil {
			return fmt.Errorf("no socket bound to the sender's name %q", m.Addr[2:])
		}
	}
	var to unix.Sockaddr
	if from == nil || from.Socket.Peer != f.ID {
		var err error
		if to, err = reachAddr(f); err != nil {
			return err
		}
	}
	if from != nil {
		return sendAll(b.fds[from.ID], m.Data, to)
	}
	tmp, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(tmp)
	return sendAll(tmp, m.Data, to)
}

func (b *unixBuild) byName(addr []byte) *snapshot.File {
	for _, f := range b.socks {
		if string(f.Socket.Local) == string(addr) {
			return f
		}
	}
	return nil
}

// sendAll sends data without blocking: the restore must not wait on a
// queue that the saved data no longer fits.
func sendAll(fd int, data []byte, to unix.Sockaddr) error {
	if len(data) == 0 {
		return sendOnce(fd, data, to)
	}
	for sent := 0; sent < len(data); {
		n, err := unix.SendmsgN(fd, data[sent:], nil, to, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err != nil {
			return fmt.Errorf("send %d bytes after %d: %w", len(data)-sent, sent, err)
		}
		sent += n
	}
	return nil
}

func sendOnce(fd int, data []byte, to unix.Sockaddr) error {
	if _, err := unix.SendmsgN(fd, data, nil, to, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("send empty message: %w", err)
	}
	return nil
}

// finish sets the saved socket options, the shutdown state and the file
// status flags, once no more data goes through the socket.
func (b *unixBuild) finish(f *snapshot.File) error {
	fd := b.fds[f.ID]
	for _, o := range f.Socket.Options {
		if err := setUnixOpt(fd, o); err != nil {
			return err
		}
	}
	if how, ok := shutdownHow(f.Socket.Shutdown); ok {
		if err := unix.Shutdown(fd, how); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("shutdown %d: %w", how, err)
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(f.Flags&openFlagsMask)); err != nil {
		return fmt.Errorf("set file flags %#o: %w", f.Flags, err)
	}
	return nil
}

// setUnixOpt sets one saved SOL_SOCKET option. Buffer sizes go through
// the FORCE variants, which ignore the sysctl maximums as the saved
// value may have, and take half the value because the kernel doubles
// what it is given.
func setUnixOpt(fd int, o snapshot.SockOpt) error {
	if o.Level != unix.SOL_SOCKET || len(o.Value) < 4 {
		return fmt.Errorf("socket option %d at level %d is not supported yet", o.Name, o.Level)
	}
	v := int(int32(binary.LittleEndian.Uint32(o.Value)))
	name := int(o.Name)
	switch name {
	case unix.SO_SNDBUF:
		name, v = unix.SO_SNDBUFFORCE, v/2
	case unix.SO_RCVBUF:
		name, v = unix.SO_RCVBUFFORCE, v/2
	case unix.SO_PEEK_OFF:
		if v < 0 {
			return nil // the default: peeking starts at the head
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, name, v); err != nil {
		return fmt.Errorf("set socket option %d to %d: %w", name, v, err)
	}
	return nil
}

// shutdownHow maps sk_shutdown bits (1 receive, 2 send) to shutdown(2)'s
// argument.
func shutdownHow(bits uint32) (int, bool) {
	switch bits & 3 {
	case 1:
		return unix.SHUT_RD, true
	case 2:
		return unix.SHUT_WR, true
	case 3:
		return unix.SHUT_RDWR, true
	}
	return 0, false
}
