package dump

import "strings"

// UnixSocket is the sock_diag record of one Unix socket, as the dump
// reads it to link each socket to its peer.
type UnixSocket struct {
	Inode uint32
	Type  uint8 // SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET
	// State is TCP_ESTABLISHED (1) for a connected socket, TCP_LISTEN
	// (10) for a listener and TCP_CLOSE (7) otherwise.
	State uint8
	// Name is the bound name: a path, "@name" for an abstract name, or ""
	// when unbound. An accepted socket carries its listener's name.
	Name string
	// Peer is the inode of the connected peer. It is 0 when the peer was
	// closed or is an embryo that no process has accepted yet.
	Peer uint32
	// Pending lists, for a listener, the inodes of the connecting sockets
	// whose connections wait in its accept queue, oldest first.
	Pending []uint32
}

// UnixSockets lists every Unix socket of the caller's network namespace,
// by inode, through NETLINK_SOCK_DIAG. It stops no process.
func UnixSockets() (map[uint32]UnixSocket, error) {
	diag, err := readUnixDiag()
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]UnixSocket, len(diag))
	for ino, d := range diag {
		out[ino] = UnixSocket{Inode: d.ino, Type: d.typ, State: d.state, Name: diagName(d.name),
			Peer: d.peer, Pending: d.icons}
	}
	return out, nil
}

// diagName formats a sun_path as sock_diag reports it for messages: a path
// without its trailing NUL, or "@name" for an abstract name.
func diagName(name []byte) string {
	if len(name) > 0 && name[0] == 0 {
		return "@" + string(name[1:])
	}
	return strings.TrimRight(string(name), "\x00")
}

// PipePeerClosed reports whether nobody holds the other end of the pipe
// behind descriptor fd of pid: the write end when hasRead, else the read
// end. Dump keeps such a pipe and rejects a pipe whose other end is held
// outside the dumped processes, and this is the test it uses. It opens
// a new description of the held end for a moment, so pid need not be
// stopped.
func PipePeerClosed(pid, fd int, hasRead bool) (bool, error) {
	return peerClosed(pid, fd, hasRead)
}
