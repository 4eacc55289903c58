package tcprepair

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
)

// refillBuffer is the send and receive buffer size a rebuilt socket has
// while its queues are refilled, so that data which a smaller buffer
// held fits again whatever the skb overhead. The caller sets the saved
// sizes afterwards.
const refillBuffer = 64 << 20

// Rebuild creates a socket of family that continues connection s between
// local and remote: it sets the sequence numbers, connects without a
// handshake, sets the negotiated options and the window, refills both
// queues and leaves repair mode. Data that was in the send queue counts
// as sent, so the kernel retransmits it once its timer fires.
func Rebuild(s *Saved, family int, local, remote unix.Sockaddr) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := rebuild(fd, s, local, remote); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func rebuild(fd int, s *Saved, local, remote unix.Sockaddr) error {
	r := &s.Repair
	// N.B. repair mode also lets bind take a port that a listener or
	// another connection holds (SK_FORCE_REUSE).
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return fmt.Errorf("enter TCP_REPAIR: %w", err)
	}
	for _, b := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, b, refillBuffer); err != nil {
			return fmt.Errorf("set buffer option %d: %w", b, err)
		}
	}

	if err := setQueueSeq(fd, sendQueue, r.SendSeq-uint32(len(s.Send))); err != nil {
		return err
	}
	if err := setQueueSeq(fd, recvQueue, r.RecvSeq-uint32(len(s.Recv))); err != nil {
		return err
	}
	if err := unix.Bind(fd, local); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.Connect(fd, remote); err != nil {
		return fmt.Errorf("connect in repair mode: %w", err)
	}

	if err := setOptions(fd, s); err != nil {
		return err
	}
	if err := refill(fd, recvQueue, s.Recv); err != nil {
		return err
	}
	if err := refill(fd, sendQueue, s.Send); err != nil {
		return err
	}
	if err := setWindow(fd, s); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return fmt.Errorf("leave TCP_REPAIR: %w", err)
	}
	return nil
}

func setQueueSeq(fd, q int, seq uint32) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q); err != nil {
		return fmt.Errorf("select repair queue %d: %w", q, err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, int(int32(seq))); err != nil {
		return fmt.Errorf("set TCP_QUEUE_SEQ of queue %d to %d: %w", q, seq, err)
	}
	return nil
}

// setOptions sets what the handshake negotiated, and the timestamp
// clock so that the peer's PAWS check accepts the next segment.
func setOptions(fd int, s *Saved) error {
	r := &s.Repair
	opts := []unix.TCPRepairOpt{{Code: unix.TCPOPT_MAXSEG, Val: r.MSS}}
	if r.WindowScaling {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_WINDOW,
			Val: uint32(r.SendWScale) | uint32(r.RecvWScale)<<16})
	}
	if r.SACK {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED})
	}
	if r.Timestamps {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_TIMESTAMP})
	}
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return fmt.Errorf("set TCP_REPAIR_OPTIONS: %w", err)
	}
	if !r.Timestamps {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, int(int32(r.Timestamp))); err != nil {
		return fmt.Errorf("set TCP_TIMESTAMP to %d: %w", r.Timestamp, err)
	}
	return nil
}

// refill writes data into queue q in repair mode: into the receive
// queue as if it had arrived, into the send queue as if it had been
// sent.
func refill(fd, q int, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q); err != nil {
		return fmt.Errorf("select repair queue %d: %w", q, err)
	}
	defer unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, noQueue)
	for sent := 0; sent < len(data); {
		n, err := unix.SendmsgN(fd, data[sent:], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err != nil {
			return fmt.Errorf("refill queue %d: %d of %d bytes: %w", q, sent, len(data), err)
		}
		if n == 0 {
			return fmt.Errorf("refill queue %d: no progress after %d of %d bytes", q, sent, len(data))
		}
		sent += n
	}
	return nil
}

func setWindow(fd int, s *Saved) error {
	// N.B. both windows may be 0: a receiver whose buffer is full
	// advertises a zero window.
	r := &s.Repair
	w := make([]byte, repairWindowSize)
	le := binary.LittleEndian
	le.PutUint32(w[0:], r.SndWl1)
	le.PutUint32(w[4:], r.SndWnd)
	le.PutUint32(w[8:], r.MaxWindow)
	le.PutUint32(w[12:], r.RcvWnd)
	le.PutUint32(w[16:], r.RcvWup)
	if err := sys.SetsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, w); err != nil {
		return fmt.Errorf("set TCP_REPAIR_WINDOW: %w", err)
	}
	return nil
}
