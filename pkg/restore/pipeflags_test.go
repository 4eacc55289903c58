package restore

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

func TestNewPipePackets(t *testing.T) {
	page := os.Getpagesize()
	for _, tt := range []struct {
		name    string
		len     int
		packets []snapshot.PipePacket
	}{
		{"stream only", 5000, nil},
		{"two packets", 200, []snapshot.PipePacket{packet(0, 100), packet(100, 100)}},
		{"one-byte packets", 3, []snapshot.PipePacket{packet(0, 1), packet(1, 1), packet(2, 1)}},
		// Without the staging tee, the packet would merge into the
		// 10-byte stream buffer and read as stream data.
		{"short stream before a packet", 80, []snapshot.PipePacket{packet(10, 50)}},
		{"stream between packets", 3*page + 30, []snapshot.PipePacket{packet(0, 10), packet(3*page, 20)}},
		{"page-long packet", page + 1, []snapshot.PipePacket{packet(1, page)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.len)
			for i := range data {
				data[i] = byte(i*7 + 1)
			}
			ends, err := newPipe(&snapshot.Pipe{ID: 1, Data: data, Packets: tt.packets})
			if err != nil {
				t.Fatalf("newPipe(%d bytes, %v) = %v", tt.len, tt.packets, err)
			}
			defer ends[0].Close()
			defer ends[1].Close()
			want := bytes.Clone(data)
			for _, pk := range tt.packets {
				clear(want[pk.Offset+1 : pk.Offset+pk.Len])
			}
			got := readLayout(t, ends[0].fd, tt.packets)
			if !bytes.Equal(got, want) {
				t.Errorf("newPipe(%d bytes, %v): read back %d bytes that differ from the data", tt.len, tt.packets, len(got))
			}
		})
	}
}

// readLayout reads pipe r the way packets make observable: each stream
// run in one read that must stop at the packet, each packet with a
// one-byte read that must consume all of it. It returns the bytes read,
// with zeros for the bytes of each packet after its first.
func readLayout(t *testing.T, r int, packets []snapshot.PipePacket) []byte {
	t.Helper()
	queued, err := unix.IoctlGetInt(r, unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, queued)
	at := 0
	for i, pk := range packets {
		if gap := int(pk.Offset) - at; gap > 0 {
			if n, err := unix.Read(r, out[at:pk.Offset]); n != gap || err != nil {
				t.Fatalf("read stream before packet %d = %d, %v, want %d bytes", i, n, err, gap)
			}
		}
		before, _ := unix.IoctlGetInt(r, unix.TIOCINQ)
		if n, err := unix.Read(r, out[pk.Offset:pk.Offset+1]); n != 1 || err != nil {
			t.Fatalf("read one byte of packet %d = %d, %v, want 1", i, n, err)
		}
		after, _ := unix.IoctlGetInt(r, unix.TIOCINQ)
		if before-after != int(pk.Len) {
			t.Fatalf("one-byte read of packet %d consumed %d bytes, want the packet's %d", i, before-after, pk.Len)
		}
		at = int(pk.Offset + pk.Len)
	}
	if rest := queued - at; rest > 0 {
		if n, err := unix.Read(r, out[at:]); n != rest || err != nil {
			t.Fatalf("read stream after the packets = %d, %v, want %d bytes", n, err, rest)
		}
	}
	return out
}

func TestNewPipeInvalidPackets(t *testing.T) {
	for _, tt := range []struct {
		name    string
		packets []snapshot.PipePacket
		want    string
	}{
		{"empty packet", []snapshot.PipePacket{packet(0, 0)}, "length 0"},
		{"longer than a page", []snapshot.PipePacket{packet(0, (os.Getpagesize() + 1))}, "want 1 to"},
		{"past the data", []snapshot.PipePacket{packet(90, 20)}, "outside the 100 bytes"},
		{"overlapping", []snapshot.PipePacket{packet(0, 20), packet(10, 20)}, "overlap"},
		{"out of order", []snapshot.PipePacket{packet(50, 10), packet(0, 10)}, "overlap"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newPipe(&snapshot.Pipe{ID: 1, Data: make([]byte, 100), Packets: tt.packets})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newPipe(100 bytes, %v) = %v, want an error containing %q", tt.packets, err, tt.want)
			}
		})
	}
}

// packet returns the PipePacket at offset with length n.
func packet(offset, n int) snapshot.PipePacket {
	return snapshot.PipePacket{Offset: uint32(offset), Len: uint32(n)}
}
