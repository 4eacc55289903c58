package dump

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestDiagName(t *testing.T) {
	tests := []struct {
		name []byte
		want string
	}{
		{nil, ""},
		{[]byte("/run/systemd/journal/stdout\x00"), "/run/systemd/journal/stdout"},
		{[]byte("rel.sock\x00"), "rel.sock"},
		{[]byte("\x00abstract"), "@abstract"},
	}
	for _, tt := range tests {
		if got := diagName(tt.name); got != tt.want {
			t.Errorf("diagName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestUnixSocketsPeers checks that UnixSockets links the two ends of a
// socketpair to each other.
func TestUnixSocketsPeers(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	var a, b unix.Stat_t
	if err := unix.Fstat(fds[0], &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(fds[1], &b); err != nil {
		t.Fatal(err)
	}

	socks, err := UnixSockets()
	if err != nil {
		t.Fatalf("UnixSockets() = %v", err)
	}

	got, ok := socks[uint32(a.Ino)]
	if !ok {
		t.Fatalf("UnixSockets() has no socket %d", a.Ino)
	}
	if got.Peer != uint32(b.Ino) {
		t.Errorf("UnixSockets()[%d].Peer = %d, want %d", a.Ino, got.Peer, b.Ino)
	}
	if got.State != tcpEstablished || got.Type != unix.SOCK_STREAM {
		t.Errorf("UnixSockets()[%d] state, type = %d, %d, want %d, %d",
			a.Ino, got.State, got.Type, tcpEstablished, unix.SOCK_STREAM)
	}
}

// TestUnixSocketsClosedPeer checks that a stream socket whose peer was
// closed stays connected with peer 0, the case Dump rejects as connected
// to a socket that no dumped process holds.
func TestUnixSocketsClosedPeer(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])

	socks, err := UnixSockets()
	if err != nil {
		t.Fatalf("UnixSockets() = %v", err)
	}

	got := socks[uint32(st.Ino)]
	if got.Peer != 0 || got.State != tcpEstablished {
		t.Errorf("UnixSockets()[%d] peer, state = %d, %d, want 0, %d", st.Ino, got.Peer, got.State, tcpEstablished)
	}
}
