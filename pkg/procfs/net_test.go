package procfs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadUnixSockets(t *testing.T) {
	got, err := ReadUnixSockets(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	want := []UnixSocket{
		{RefCount: 3, Type: 1, State: 3, Inode: 71175},
		{RefCount: 3, Type: 1, State: 3, Inode: 71176, Path: "/tmp/capture/sock"},
		{RefCount: 2, Flags: 1 << 16, Type: 1, State: 1, Inode: 71172, Path: "/tmp/capture/sock"},
		{RefCount: 2, Type: 2, State: 1, Inode: 71177, Path: "@ksu-abstract"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadUnixSockets(%d) mismatch (-want +got):\n%s", testPid, diff)
	}
}

func TestParseUnixSocketsPathWithSpaces(t *testing.T) {
	data := "0000000040e7b468: 00000002 00000000 00010000 0005 01 12345 /run/my app/ctl sock\n"
	got, err := ParseUnixSockets(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "/run/my app/ctl sock" || got[0].Type != 5 {
		t.Errorf("ParseUnixSockets(%q) = %+v, want one SOCK_SEQPACKET at %q", data, got, "/run/my app/ctl sock")
	}
	for _, bad := range []string{"0000000040e7b468: 00000002 00000000\n", "0000000040e7b468: 0000000x 00000000 00010000 0005 01 12345\n"} {
		if got, err := ParseUnixSockets(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseUnixSockets(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestReadTCPSockets(t *testing.T) {
	for _, tt := range []struct {
		name string
		ipv6 bool
		want []TCPSocket
	}{
		{"tcp", false, []TCPSocket{
			{Local: netip.MustParseAddrPort("127.0.0.1:4242"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: 10, Inode: 71182},
			{Local: netip.MustParseAddrPort("127.0.0.1:45912"), Remote: netip.MustParseAddrPort("127.0.0.1:4242"), State: 1, Inode: 71184},
			{Local: netip.MustParseAddrPort("127.0.0.1:4242"), Remote: netip.MustParseAddrPort("127.0.0.1:45912"), State: 1, RxQueue: 11, Inode: 70240},
		}},
		{"tcp6", true, []TCPSocket{
			{Local: netip.MustParseAddrPort("[::1]:4343"), Remote: netip.MustParseAddrPort("[::]:0"), State: 10, Inode: 70241},
			{Local: netip.MustParseAddrPort("[::1]:47136"), Remote: netip.MustParseAddrPort("[::1]:4343"), State: 1, Inode: 70243},
			{Local: netip.MustParseAddrPort("[::1]:4343"), Remote: netip.MustParseAddrPort("[::1]:47136"), State: 1, Inode: 70244},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadTCPSockets(testRoot, testPid, tt.ipv6)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("ReadTCPSockets(%d, %v) mismatch (-want +got):\n%s", testPid, tt.ipv6, diff)
			}
		})
	}
}

func TestParseTCPSocketsMappedAddress(t *testing.T) {
	// An IPv4 client of an IPv6 listener, as net/tcp6 prints it.
	data := "   3: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000200000A:C350 01 00000010:00000000 01:00000014 00000000  1000        0 424242 1 0000000000000000 20 4 28 10 -1\n"
	got, err := ParseTCPSockets(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := TCPSocket{
		Local:  netip.MustParseAddrPort("[::ffff:127.0.0.1]:8080"),
		Remote: netip.MustParseAddrPort("[::ffff:10.0.0.2]:50000"),
		State:  1, TxQueue: 16, UID: 1000, Inode: 424242,
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("ParseTCPSockets(%q) = %+v, want %+v", data, got, want)
	}
	for _, bad := range []string{
		"   0: 0100007F:1092 00000000:0000 0A\n",
		"   0: 0100007:1092 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n",
		"   0: 0100007F:1092 00000000:0000 0A 0000000000000000 00:00000000 00000000     0        0 1\n",
	} {
		if got, err := ParseTCPSockets(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseTCPSockets(%q) = %+v, want an error", bad, got)
		}
	}
}

func FuzzParseUnixSockets(f *testing.F) {
	f.Add("Num       RefCount Protocol Flags    Type St Inode Path\n000000009038b2d1: 00000002 00000000 00010000 0001 01 71172 /tmp/capture/sock\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseUnixSockets(strings.NewReader(data))
	})
}

func FuzzParseTCPSockets(f *testing.F) {
	f.Add("   2: 0100007F:1092 0100007F:B358 01 00000000:0000000B 02:000005DB 00000000     0        0 70240 2 00000000c6a8151e 20 4 30 10 -1\n")
	f.Add("   0: 00000000000000000000000001000000:10F7 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 70241 2 0000000032102902 100 0 0 10 0\n")
	f.Fuzz(func(t *testing.T, data string) {
		socks, err := ParseTCPSockets(strings.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Local.IsValid() || !s.Remote.IsValid() {
				t.Errorf("ParseTCPSockets(%q) returned invalid addresses %+v", data, s)
			}
		}
	})
}
