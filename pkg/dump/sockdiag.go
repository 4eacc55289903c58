package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Request and attribute numbers of unix_diag (linux/unix_diag.h), which
// golang.org/x/sys/unix does not define.
const (
	udiagShowName  = 0x01
	udiagShowVFS   = 0x02
	udiagShowPeer  = 0x04
	udiagShowIcons = 0x08
	udiagShowRqlen = 0x10

	unixDiagName     = 0
	unixDiagVFS      = 1
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRqlen    = 4
	unixDiagShutdown = 6
)

// Sizes of struct nlmsghdr, struct unix_diag_req and struct
// unix_diag_msg.
const (
	nlmsgHeaderSize   = 16
	unixDiagReqSize   = 24
	unixDiagMsgSize   = 16
	maxDiagReplyBytes = 1 << 16
	// maxDiagMessages bounds one dump, so a kernel that never sends
	// NLMSG_DONE cannot keep the dumper reading forever.
	maxDiagMessages = 1 << 20
)

// unixDiag is the sock_diag record of one Unix socket.
type unixDiag struct {
	ino      uint32
	typ      uint8
	state    uint8  // TCP_ESTABLISHED, TCP_LISTEN or TCP_CLOSE
	name     []byte // sun_path as bound, with the trailing NUL of a path name
	vfsIno   uint32 // inode of the socket file a path name created
	vfsDev   uint32
	peer     uint32   // inode of the peer; 0 for an embryo not yet accepted
	icons    []uint32 // for a listener: inodes of the connecting sockets, oldest first
	rqueue   uint32   // for a listener: connections in the accept queue
	wqueue   uint32   // for a listener: the backlog
	shutdown uint8    // RCV_SHUTDOWN 1, SEND_SHUTDOWN 2
}

// readUnixDiag lists every Unix socket of the dumper's network namespace,
// by inode, with NETLINK_SOCK_DIAG.
func readUnixDiag() (map[uint32]*unixDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, unixDiagRequest(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send unix_diag request: %w", err)
	}
	out := map[uint32]*unixDiag{}
	buf := make([]byte, maxDiagReplyBytes)
	for range maxDiagMessages {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("receive unix_diag reply: %w", err)
		}
		done, err := parseDiagReply(buf[:n], out)
		if err != nil || done {
			return out, err
		}
	}
	return nil, errors.New("receive unix_diag reply: no end after a million messages")
}

// unixDiagRequest returns a dump request for Unix sockets in every state.
func unixDiagRequest() []byte {
	b := make([]byte, nlmsgHeaderSize+unixDiagReqSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(len(b)))
	le.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	le.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	le.PutUint32(b[8:], 1) // sequence number
	req := b[nlmsgHeaderSize:]
	req[0] = unix.AF_UNIX
	le.PutUint32(req[4:], ^uint32(0)) // udiag_states: all
	le.PutUint32(req[12:], udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRqlen)
	return b
}

// parseDiagReply adds the sockets of one datagram of netlink messages to
// out and reports whether it held NLMSG_DONE.
func parseDiagReply(b []byte, out map[uint32]*unixDiag) (bool, error) {
	le := binary.LittleEndian
	for len(b) >= nlmsgHeaderSize {
		size := int(le.Uint32(b[0:]))
		typ := le.Uint16(b[4:])
		if size < nlmsgHeaderSize || size > len(b) {
			return false, fmt.Errorf("parse unix_diag reply: message of %d bytes in %d", size, len(b))
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			errno := int32(le.Uint32(b[nlmsgHeaderSize:]))
			return false, fmt.Errorf("unix_diag: %w", unix.Errno(-errno))
		case unix.SOCK_DIAG_BY_FAMILY:
			d, err := parseUnixDiag(b[nlmsgHeaderSize:size])
			if err != nil {
				return false, err
			}
			out[d.ino] = d
		}
		b = b[min(nlmAlign(size), len(b)):]
	}
	return false, nil
}

// parseUnixDiag decodes a struct unix_diag_msg and its attributes.
func parseUnixDiag(b []byte) (*unixDiag, error) {
	if len(b) < unixDiagMsgSize {
		return nil, fmt.Errorf("parse unix_diag_msg: %d bytes, want %d", len(b), unixDiagMsgSize)
	}
	le := binary.LittleEndian
	d := &unixDiag{typ: b[1], state: b[2], ino: le.Uint32(b[4:])}
	attrs := b[unixDiagMsgSize:]
	for len(attrs) >= 4 {
		size := int(le.Uint16(attrs[0:]))
		if size < 4 || size > len(attrs) {
			return nil, fmt.Errorf("parse unix_diag attribute of socket %d: %d bytes in %d", d.ino, size, len(attrs))
		}
		d.setAttr(le.Uint16(attrs[2:]), attrs[4:size])
		attrs = attrs[min(nlmAlign(size), len(attrs)):]
	}
	return d, nil
}

func (d *unixDiag) setAttr(typ uint16, v []byte) {
	le := binary.LittleEndian
	switch {
	case typ == unixDiagName:
		d.name = append([]byte(nil), v...)
	case typ == unixDiagVFS && len(v) >= 8:
		d.vfsIno, d.vfsDev = le.Uint32(v[0:]), le.Uint32(v[4:])
	case typ == unixDiagPeer && len(v) >= 4:
		d.peer = le.Uint32(v)
	case typ == unixDiagIcons:
		for i := 0; i+4 <= len(v); i += 4 {
			d.icons = append(d.icons, le.Uint32(v[i:]))
		}
	case typ == unixDiagRqlen && len(v) >= 8:
		d.rqueue, d.wqueue = le.Uint32(v[0:]), le.Uint32(v[4:])
	case typ == unixDiagShutdown && len(v) >= 1:
		d.shutdown = v[0]
	}
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }
