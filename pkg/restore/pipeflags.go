package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// openPipeEnd opens a new description of the pipe or FIFO end at path
// with the saved status flags. open(2) rejects O_DIRECT on a pipe with
// EINVAL, but fcntl(F_SETFL) accepts it, so packet mode is set after the
// open.
func openPipeEnd(path string, flags int) (*fdFile, error) {
	f, err := openFD(path, flags&^unix.O_DIRECT)
	if err != nil || flags&unix.O_DIRECT == 0 {
		return f, err
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, flags&^unix.O_ACCMODE); err != nil {
		f.Close()
		return nil, fmt.Errorf("set O_DIRECT on %s: %w", path, err)
	}
	return f, nil
}

// fillPipe writes the unread data of p into the pipe behind write end
// fd, each packet-mode buffer with one write through packet mode. The
// restorer's description of fd is its own, so switching its O_DIRECT
// flag changes no restored descriptor.
//
// pipe_write merges a write into the last buffer when that buffer has
// room and the merge flag, even when the write is in packet mode. A
// buffer that tee(2) made lacks the flag, so stream data that a packet
// follows goes in through a staging pipe and tee.
func fillPipe(fd int, p *snapshot.Pipe) error {
	if err := checkPackets(p); err != nil {
		return err
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("read status flags: %w", err)
	}
	defer unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	at := 0
	for _, pk := range p.Packets {
		start, end := int(pk.Offset), int(pk.Offset+pk.Len)
		if err := teeStream(fd, p.Data[at:start], int(p.Capacity)); err != nil {
			return fmt.Errorf("refill %d stream bytes at byte %d: %w", start-at, at, err)
		}
		if err := writeMode(fd, flags|unix.O_DIRECT, p.Data[start:end]); err != nil {
			return fmt.Errorf("refill packet of %d bytes at byte %d: %w", pk.Len, start, err)
		}
		at = end
	}
	if err := writeMode(fd, flags&^unix.O_DIRECT, p.Data[at:]); err != nil {
		return fmt.Errorf("refill %d stream bytes at byte %d: %w", len(p.Data)-at, at, err)
	}
	return nil
}

// checkPackets rejects packets that are out of order, overlap, lie
// outside the data or are longer than a page, which one write in packet
// mode cannot recreate.
func checkPackets(p *snapshot.Pipe) error {
	at := uint64(0)
	for i, pk := range p.Packets {
		start, end := uint64(pk.Offset), uint64(pk.Offset)+uint64(pk.Len)
		switch {
		case pk.Len == 0 || pk.Len > uint32(os.Getpagesize()):
			return fmt.Errorf("packet %d: length %d, want 1 to %d", i, pk.Len, os.Getpagesize())
		case start < at || end > uint64(len(p.Data)):
			return fmt.Errorf("packet %d: bytes %d to %d overlap another or lie outside the %d bytes of data",
				i, start, end, len(p.Data))
		}
		at = end
	}
	return nil
}

// writeMode sets the status flags of fd and writes b in one call.
func writeMode(fd, flags int, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags); err != nil {
		return fmt.Errorf("set status flags %#o: %w", flags, err)
	}
	n, err := unix.Write(fd, b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("wrote %d bytes", n)
	}
	return nil
}

// teeStream appends b to the pipe behind fd as stream buffers without
// the merge flag: written into a staging pipe of the given capacity (0
// for the default), then copied with tee.
func teeStream(fd int, b []byte, capacity int) error {
	if len(b) == 0 {
		return nil
	}
	var staging [2]int
	if err := unix.Pipe2(staging[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("create staging pipe: %w", err)
	}
	defer unix.Close(staging[0])
	defer unix.Close(staging[1])
	if capacity != 0 {
		if _, err := unix.FcntlInt(uintptr(staging[1]), unix.F_SETPIPE_SZ, capacity); err != nil {
			return fmt.Errorf("size staging pipe to %d bytes: %w", capacity, err)
		}
	}
	if err := writeMode(staging[1], unix.O_NONBLOCK, b); err != nil {
		return fmt.Errorf("write staging pipe: %w", err)
	}
	n, err := unix.Tee(staging[0], fd, len(b), unix.SPLICE_F_NONBLOCK)
	if err != nil {
		return fmt.Errorf("tee: %w", err)
	}
	if int(n) != len(b) {
		return fmt.Errorf("tee copied %d bytes", n)
	}
	return nil
}
