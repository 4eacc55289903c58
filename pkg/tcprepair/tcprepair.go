// Package tcprepair saves and rebuilds established TCP connections with
// the TCP_REPAIR socket options: sequence numbers, the send and receive
// queues, the negotiated options (MSS, window scaling, SACK, timestamps)
// and the window state. A rebuilt socket continues the connection where
// the saved one stopped, without a handshake, so the peer gets at most
// retransmissions.
//
// A socket in repair mode still acknowledges what arrives, so the
// connection's packets must be dropped (pkg/netlock) from before Save
// until the rebuilt socket is out of repair mode. Both calls need
// CAP_NET_ADMIN.
package tcprepair

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Queue selectors of TCP_REPAIR_QUEUE (linux/tcp.h).
const (
	noQueue   = 0
	recvQueue = 1
	sendQueue = 2
)

// Bits of tcpi_options (linux/tcp.h).
const (
	optTimestamps = 1
	optSACK       = 2
	optWScale     = 4
)

// tcpInfoSize covers struct tcp_info up to tcpi_rcv_mss. tcpiOptions is
// the offset of tcpi_options, and tcpiWScale the offset of the byte with
// tcpi_snd_wscale (low nibble) and tcpi_rcv_wscale (high nibble).
const (
	tcpInfoSize = 32
	tcpiOptions = 5
	tcpiWScale  = 6
)

// repairWindowSize is sizeof(struct tcp_repair_window).
const repairWindowSize = 20

// tcpEstablished is TCP_ESTABLISHED.
const tcpEstablished = 1

// ErrState is returned by Save for a socket that is not established.
var ErrState = errors.New("TCP connection is not established")

// Saved is the state of one connection: the repair record and the data
// of both queues, oldest first.
type Saved struct {
	Repair snapshot.TCPRepair
	Send   []byte // sent and not acknowledged, then not yet sent
	Recv   []byte // received and not yet read
}

// Save puts established TCP socket fd into repair mode and reads its
// state. It leaves the socket in repair mode on success, so that a later
// close sends nothing to the peer; Leave takes it out again. On error the
// socket is out of repair mode.
func Save(fd int) (*Saved, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return nil, fmt.Errorf("enter TCP_REPAIR: %w", err)
	}
	s, err := save(fd)
	if err != nil {
		return nil, errors.Join(err, Leave(fd))
	}
	return s, nil
}

// Leave takes socket fd out of repair mode without a window probe.
func Leave(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP); err != nil {
		return fmt.Errorf("leave TCP_REPAIR: %w", err)
	}
	return nil
}

func save(fd int) (*Saved, error) {
	info := make([]byte, tcpInfoSize)
	if _, err := sys.GetsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_INFO, info); err != nil {
		return nil, fmt.Errorf("read TCP_INFO: %w", err)
	}
	if info[0] != tcpEstablished {
		return nil, fmt.Errorf("%w: state %d", ErrState, info[0])
	}
	s := &Saved{}
	r := &s.Repair
	r.Timestamps = info[tcpiOptions]&optTimestamps != 0
	r.SACK = info[tcpiOptions]&optSACK != 0
	r.WindowScaling = info[tcpiOptions]&optWScale != 0
	r.SendWScale, r.RecvWScale = info[tcpiWScale]&0xf, info[tcpiWScale]>>4
	if err := saveScalars(fd, r); err != nil {
		return nil, err
	}
	var err error
	if s.Send, r.SendSeq, err = saveQueue(fd, sendQueue, unix.SIOCOUTQ); err != nil {
		return nil, err
	}
	if s.Recv, r.RecvSeq, err = saveQueue(fd, recvQueue, unix.SIOCINQ); err != nil {
		return nil, err
	}
	unsent, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD)
	if err != nil {
		return nil, fmt.Errorf("read SIOCOUTQNSD: %w", err)
	}
	r.Unsent = uint32(unsent)
	return s, nil
}

// saveScalars reads the MSS, the timestamp clock and the window state.
func saveScalars(fd int, r *snapshot.TCPRepair) error {
	mss, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return fmt.Errorf("read TCP_MAXSEG: %w", err)
	}
	r.MSS = uint32(mss)
	ts, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)
	if err != nil {
		return fmt.Errorf("read TCP_TIMESTAMP: %w", err)
	}
	r.Timestamp = uint32(ts)
	w := make([]byte, repairWindowSize)
	if _, err := sys.GetsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, w); err != nil {
		return fmt.Errorf("read TCP_REPAIR_WINDOW: %w", err)
	}
	le := binary.LittleEndian
	r.SndWl1, r.SndWnd, r.MaxWindow = le.Uint32(w[0:]), le.Uint32(w[4:]), le.Uint32(w[8:])
	r.RcvWnd, r.RcvWup = le.Uint32(w[12:]), le.Uint32(w[16:])
	return nil
}

// saveQueue reads the sequence number at the end of queue q and peeks at
// its whole content, whose length ioctl size reports.
func saveQueue(fd, q int, size uint) ([]byte, uint32, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q); err != nil {
		return nil, 0, fmt.Errorf("select repair queue %d: %w", q, err)
	}
	defer unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, noQueue)
	seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return nil, 0, fmt.Errorf("read TCP_QUEUE_SEQ of queue %d: %w", q, err)
	}
	n, err := unix.IoctlGetInt(fd, size)
	if err != nil {
		return nil, 0, fmt.Errorf("read length of queue %d: %w", q, err)
	}
	if n == 0 {
		return nil, uint32(seq), nil
	}
	buf := make([]byte, n)
	got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return nil, 0, fmt.Errorf("peek at queue %d: %w", q, err)
	}
	if got != n {
		return nil, 0, fmt.Errorf("peek at queue %d: got %d of %d bytes", q, got, n)
	}
	return buf, uint32(seq), nil
}
