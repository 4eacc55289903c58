package dump

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// pipeWrite is one write(2) into a test pipe, through a packet-mode
// (O_DIRECT) write end or not.
type pipeWrite struct {
	packet bool
	n      int
}

func TestReadPipePackets(t *testing.T) {
	page := os.Getpagesize()
	for _, tt := range []struct {
		name     string
		writes   []pipeWrite
		consumed int // bytes read from the front before the dump
		want     []snapshot.PipePacket
	}{
		{"stream only", []pipeWrite{{false, 300}, {false, 5000}}, 0, nil},
		{"two packets", []pipeWrite{{true, 100}, {true, 100}}, 0, []snapshot.PipePacket{packet(0, 100), packet(100, 100)}},
		{"one-byte packets", []pipeWrite{{true, 1}, {true, 1}, {true, 1}}, 0,
			[]snapshot.PipePacket{packet(0, 1), packet(1, 1), packet(2, 1)}},
		{"stream around a packet", []pipeWrite{{false, page}, {true, 50}, {false, 20}}, 0,
			[]snapshot.PipePacket{packet(page, 50)}},
		// pipe_write merges a packet-mode write into a stream buffer
		// with room, so those bytes read as stream data (fs/pipe.c).
		{"packet merged into stream", []pipeWrite{{false, 10}, {true, 50}}, 0, nil},
		{"stream after packets", []pipeWrite{{true, 100}, {false, 9}}, 0, []snapshot.PipePacket{packet(0, 100)}},
		{"one-byte packet last", []pipeWrite{{false, page}, {true, 1}}, 0, []snapshot.PipePacket{packet(page, 1)}},
		{"packet write split at a page", []pipeWrite{{true, page + 904}}, 0,
			[]snapshot.PipePacket{packet(0, page), packet(page, 904)}},
		{"pages of stream before a packet", []pipeWrite{{false, 3 * page}, {true, 10}}, 0,
			[]snapshot.PipePacket{packet(3*page, 10)}},
		{"partly read stream buffer", []pipeWrite{{false, page}, {true, 40}}, 30,
			[]snapshot.PipePacket{packet(page-30, 40)}},
		{"first packet read", []pipeWrite{{true, 100}, {false, page}, {true, 100}}, 100,
			[]snapshot.PipePacket{packet(page, 100)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, want := fillTestPipe(t, tt.writes, tt.consumed)
			var got snapshot.Pipe
			if err := readPipe(os.Getpid(), r, &got); err != nil {
				t.Fatalf("readPipe(fd %d) = %v", r, err)
			}
			if !bytes.Equal(got.Data, want) {
				t.Errorf("readPipe(fd %d) data = %d bytes, want the %d queued", r, len(got.Data), len(want))
			}
			if diff := cmp.Diff(tt.want, got.Packets); diff != "" {
				t.Errorf("readPipe(fd %d) packets mismatch (-want +got):\n%s", r, diff)
			}
			queued, err := unix.IoctlGetInt(r, unix.TIOCINQ)
			if err != nil {
				t.Fatal(err)
			}
			if queued != len(want) {
				t.Errorf("after readPipe(fd %d): %d bytes queued, want %d", r, queued, len(want))
			}
		})
	}
}

// fillTestPipe makes a pipe, performs writes in order, then reads
// consumed bytes. It returns the read end and the queued bytes.
func fillTestPipe(t *testing.T, writes []pipeWrite, consumed int) (int, []byte) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	var all []byte
	for i, w := range writes {
		flags := unix.O_NONBLOCK
		if w.packet {
			flags |= unix.O_DIRECT
		}
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETFL, flags); err != nil {
			t.Fatal(err)
		}
		b := bytes.Repeat([]byte{byte(i + 1)}, w.n)
		if n, err := unix.Write(p[1], b); err != nil || n != w.n {
			t.Fatalf("write %d: wrote %d of %d bytes: %v", i, n, w.n, err)
		}
		all = append(all, b...)
	}
	if consumed > 0 {
		if n, err := unix.Read(p[0], make([]byte, consumed)); err != nil || n != consumed {
			t.Fatalf("read %d bytes before the dump: got %d: %v", consumed, n, err)
		}
	}
	return p[0], all[consumed:]
}

// packet returns the PipePacket at offset with length n.
func packet(offset, n int) snapshot.PipePacket {
	return snapshot.PipePacket{Offset: uint32(offset), Len: uint32(n)}
}
