package dump

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// A pipe buffer written through an O_DIRECT write end is a packet
// (PIPE_BUF_FLAG_PACKET in fs/pipe.c, Linux 3.4 and later). pipe_read
// copies stream buffers one after another, but stops right after a
// packet buffer and discards what of it did not fit into the caller's
// buffer. A buffer refers to one page, so a packet is at most a page
// long. A packet-mode write that fits into the room left in a stream
// buffer is merged into it and reads as stream data, so the packets are
// found by reading, not from the writers' flags. tee(2) copies a buffer
// with its packet flag, so the copies below read the way the original
// would, and the original keeps its data.

// readPackets returns the queued bytes of pipe src and its packet
// buffers. It reads two copies of the pipe. Copy one, with a stream
// byte appended after the queued data, splits into chunks where each
// read stops: every chunk but the last ends with a packet, and the last
// holds the appended byte and no packet. Copy two, read one byte at a
// time over the last page of each chunk, shows where the chunk's packet
// starts: the read that reaches the packet consumes all of it.
func readPackets(src, queued, capacity int) ([]byte, []snapshot.PipePacket, error) {
	chunks, err := readChunks(src, queued, capacity)
	if err != nil {
		return nil, nil, err
	}
	data := make([]byte, 0, queued)
	for _, c := range chunks {
		data = append(data, c...)
	}
	data = data[:queued] // drop the appended byte
	if len(chunks) == 1 {
		return data, nil, nil
	}
	copied, err := teeCopy(src, queued, capacity)
	if err != nil {
		return nil, nil, err
	}
	defer copied.close()
	var packets []snapshot.PipePacket
	offset := 0
	for _, c := range chunks[:len(chunks)-1] {
		n, err := copied.packetLen(len(c))
		if err != nil {
			return nil, nil, fmt.Errorf("find packet ending at byte %d: %w", offset+len(c), err)
		}
		offset += len(c)
		packets = append(packets, snapshot.PipePacket{Offset: uint32(offset - n), Len: uint32(n)})
	}
	return data, packets, nil
}

// readChunks reads a copy of pipe src with one stream byte appended and
// returns the data of each read.
func readChunks(src, queued, capacity int) ([][]byte, error) {
	// One more page leaves a slot for the appended byte in a full pipe.
	copied, err := teeCopy(src, queued, capacity+os.Getpagesize())
	if err != nil {
		return nil, err
	}
	defer copied.close()
	if _, err := unix.Write(copied.w, []byte{0}); err != nil {
		return nil, fmt.Errorf("append a stream byte to the copy: %w", err)
	}
	var chunks [][]byte
	left := queued + 1
	buf := make([]byte, left)
	for left > 0 {
		n, err := unix.Read(copied.r, buf)
		if err != nil {
			return nil, fmt.Errorf("read copy with %d bytes left: %w", left, err)
		}
		if n <= 0 || n > left {
			return nil, fmt.Errorf("read copy with %d bytes left: read returned %d bytes", left, n)
		}
		chunks = append(chunks, append([]byte(nil), buf[:n]...))
		left -= n
	}
	return chunks, nil
}

// pipeCopy is a pipe of the dumper's own that contains copies of another
// pipe's buffers.
type pipeCopy struct{ r, w int }

// teeCopy copies the queued bytes of pipe src into a new pipe of the
// given capacity.
func teeCopy(src, queued, capacity int) (*pipeCopy, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create copy pipe: %w", err)
	}
	c := &pipeCopy{p[0], p[1]}
	if _, err := unix.FcntlInt(uintptr(c.w), unix.F_SETPIPE_SZ, capacity); err != nil {
		c.close()
		return nil, fmt.Errorf("size copy pipe to %d bytes: %w", capacity, err)
	}
	n, err := unix.Tee(src, c.w, queued, unix.SPLICE_F_NONBLOCK)
	if err == nil && int(n) != queued {
		err = fmt.Errorf("copied %d bytes", n)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("tee %d queued bytes: %w", queued, err)
	}
	return c, nil
}

func (c *pipeCopy) close() {
	unix.Close(c.r)
	unix.Close(c.w)
}

// packetLen consumes the next chunk, chunkLen bytes that end with a
// packet, from the copy and returns the packet's length. The packet
// starts within the chunk's last page, so the bytes before that page are
// stream data and go in one read.
func (c *pipeCopy) packetLen(chunkLen int) (int, error) {
	page := os.Getpagesize()
	if skip := chunkLen - page; skip > 0 {
		n, err := unix.Read(c.r, make([]byte, skip))
		if err != nil || n != skip {
			return 0, errors.Join(fmt.Errorf("skip %d stream bytes: read %d", skip, n), err)
		}
		chunkLen = page
	}
	var b [1]byte
	for chunkLen > 0 {
		before, err := unix.IoctlGetInt(c.r, unix.TIOCINQ)
		if err != nil {
			return 0, fmt.Errorf("read copy fill level: %w", err)
		}
		if _, err := unix.Read(c.r, b[:]); err != nil {
			return 0, fmt.Errorf("read one byte of the copy: %w", err)
		}
		after, err := unix.IoctlGetInt(c.r, unix.TIOCINQ)
		if err != nil {
			return 0, fmt.Errorf("read copy fill level: %w", err)
		}
		consumed := before - after
		if consumed < 1 || consumed > chunkLen {
			return 0, fmt.Errorf("one-byte read consumed %d bytes with %d left in the chunk", consumed, chunkLen)
		}
		chunkLen -= consumed
		if chunkLen == 0 {
			return consumed, nil
		}
	}
	return 0, errors.New("empty chunk")
}
