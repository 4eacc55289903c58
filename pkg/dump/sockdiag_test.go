package dump

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// diagMsg builds a struct unix_diag_msg for inode ino followed by the
// given attributes, each a type and a value.
func diagMsg(typ, state uint8, ino uint32, attrs ...any) []byte {
	b := make([]byte, unixDiagMsgSize)
	b[0], b[1], b[2] = 1, typ, state
	binary.LittleEndian.PutUint32(b[4:], ino)
	for i := 0; i < len(attrs); i += 2 {
		v := attrs[i+1].([]byte)
		hdr := make([]byte, 4)
		binary.LittleEndian.PutUint16(hdr[0:], uint16(4+len(v)))
		binary.LittleEndian.PutUint16(hdr[2:], attrs[i].(uint16))
		b = append(b, hdr...)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func u32s(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func TestParseUnixDiag(t *testing.T) {
	for _, tt := range []struct {
		name string
		msg  []byte
		want unixDiag
	}{
		{"unnamed pair end", diagMsg(1, 1, 42, uint16(unixDiagPeer), u32s(43), uint16(unixDiagShutdown), []byte{2}),
			unixDiag{ino: 42, typ: 1, state: 1, peer: 43, shutdown: 2}},
		{"path listener", diagMsg(1, 10, 7,
			uint16(unixDiagName), []byte("l.sock\x00"),
			uint16(unixDiagVFS), u32s(99, 2049),
			uint16(unixDiagIcons), u32s(8, 9),
			uint16(unixDiagRqlen), u32s(2, 16)),
			unixDiag{ino: 7, typ: 1, state: 10, name: []byte("l.sock\x00"), vfsIno: 99, vfsDev: 2049,
				icons: []uint32{8, 9}, rqueue: 2, wqueue: 16}},
		{"abstract datagram", diagMsg(2, 7, 5, uint16(unixDiagName), []byte("\x00abs")),
			unixDiag{ino: 5, typ: 2, state: 7, name: []byte("\x00abs")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnixDiag(tt.msg)
			if err != nil {
				t.Fatalf("parseUnixDiag() = %v, want nil error", err)
			}
			if diff := cmp.Diff(tt.want, *got, cmp.AllowUnexported(unixDiag{})); diff != "" {
				t.Errorf("parseUnixDiag() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseUnixDiagInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		msg  []byte
	}{
		{"short header", make([]byte, unixDiagMsgSize-1)},
		{"attribute past the end", append(diagMsg(1, 1, 1), 40, 0, 2, 0)},
		{"attribute shorter than its header", append(diagMsg(1, 1, 1), 2, 0, 2, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseUnixDiag(tt.msg); err == nil {
				t.Errorf("parseUnixDiag(%x) = nil error, want an error", tt.msg)
			}
		})
	}
}
