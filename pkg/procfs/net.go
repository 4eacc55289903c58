package procfs

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// UnixSocket is one line of /proc/PID/net/unix, a Unix domain socket in
// the network namespace of process PID.
type UnixSocket struct {
	RefCount uint32
	// Flags has __SO_ACCEPTCON (1 << 16) set for a listening socket.
	Flags uint32
	// Type is SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
	Type uint16
	// State is the SS_* socket state (SS_UNCONNECTED 1, SS_CONNECTED 3
	// and so on).
	State uint8
	Inode uint64
	// Path is the bound address: a file path, "@NAME" for an abstract
	// name (every NUL printed as '@'), or empty for an unbound socket.
	Path string
}

// ReadUnixSockets reads /proc/PID/net/unix under root.
func ReadUnixSockets(root string, pid int) ([]UnixSocket, error) {
	data, err := readFile(root, pid, "net/unix")
	if err != nil {
		return nil, err
	}
	socks, err := ParseUnixSockets(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse net/unix of process %d: %w", pid, err)
	}
	return socks, nil
}

// ParseUnixSockets parses the contents of a net/unix file, skipping its
// header line.
func ParseUnixSockets(r io.Reader) ([]UnixSocket, error) {
	var socks []UnixSocket
	sc := newScanner(r)
	for first := true; sc.Scan(); first = false {
		if first && strings.HasPrefix(sc.Text(), "Num ") {
			continue
		}
		s, err := parseUnixLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("invalid net/unix line %q: %w", sc.Text(), err)
		}
		socks = append(socks, s)
	}
	return socks, sc.Err()
}

// parseUnixLine parses "NUM: REFCOUNT PROTOCOL FLAGS TYPE ST INODE [PATH]".
func parseUnixLine(line string) (UnixSocket, error) {
	fields := make([]string, 7)
	rest := cutFields(line, fields)
	if fields[6] == "" {
		return UnixSocket{}, fmt.Errorf("got fewer than 7 fields")
	}
	var s UnixSocket
	var nums [5]uint64
	for i, spec := range []struct{ field, base, bits int }{{1, 16, 32}, {3, 16, 32}, {4, 16, 16}, {5, 16, 8}, {6, 10, 64}} {
		n, err := strconv.ParseUint(fields[spec.field], spec.base, spec.bits)
		if err != nil {
			return UnixSocket{}, err
		}
		nums[i] = n
	}
	s.RefCount, s.Flags, s.Type, s.State, s.Inode = uint32(nums[0]), uint32(nums[1]), uint16(nums[2]), uint8(nums[3]), nums[4]
	// One space separates the inode from the path, which may itself
	// contain spaces.
	s.Path = strings.TrimPrefix(rest, " ")
	return s, nil
}

// TCPSocket is one line of /proc/PID/net/tcp or net/tcp6.
type TCPSocket struct {
	Local, Remote netip.AddrPort
	// State is the TCP state (TCP_ESTABLISHED 1 ... TCP_LISTEN 10).
	State uint8
	// TxQueue and RxQueue are the bytes in the send and receive
	// queues; for a listener RxQueue is the accept backlog.
	TxQueue, RxQueue uint32
	UID              uint32
	Inode            uint64
}

// ReadTCPSockets reads /proc/PID/net/tcp under root, or net/tcp6 with
// ipv6 set.
func ReadTCPSockets(root string, pid int, ipv6 bool) ([]TCPSocket, error) {
	name := "net/tcp"
	if ipv6 {
		name = "net/tcp6"
	}
	data, err := readFile(root, pid, name)
	if err != nil {
		return nil, err
	}
	socks, err := ParseTCPSockets(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse %s of process %d: %w", name, pid, err)
	}
	return socks, nil
}

// ParseTCPSockets parses the contents of a net/tcp or net/tcp6 file,
// skipping its header line.
func ParseTCPSockets(r io.Reader) ([]TCPSocket, error) {
	var socks []TCPSocket
	sc := newScanner(r)
	for first := true; sc.Scan(); first = false {
		if first && strings.HasPrefix(strings.TrimSpace(sc.Text()), "sl ") {
			continue
		}
		s, err := parseTCPLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("invalid tcp line %q: %w", sc.Text(), err)
		}
		socks = append(socks, s)
	}
	return socks, sc.Err()
}

// parseTCPLine parses
// "SL: LOCAL REMOTE ST TX:RX TR:WHEN RETRNSMT UID TIMEOUT INODE ...".
func parseTCPLine(line string) (TCPSocket, error) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return TCPSocket{}, fmt.Errorf("got %d fields, want at least 10", len(f))
	}

	var s TCPSocket
	var err error
	if s.Local, err = parseHexAddrPort(f[1]); err != nil {
		return TCPSocket{}, err
	}
	if s.Remote, err = parseHexAddrPort(f[2]); err != nil {
		return TCPSocket{}, err
	}
	state, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return TCPSocket{}, err
	}
	s.State = uint8(state)

	tx, rx, ok := strings.Cut(f[4], ":")
	if !ok {
		return TCPSocket{}, fmt.Errorf("queues %q have no ':'", f[4])
	}
	var nums [4]uint64
	for i, spec := range []struct {
		text       string
		base, bits int
	}{{tx, 16, 32}, {rx, 16, 32}, {f[7], 10, 32}, {f[9], 10, 64}} {
		if nums[i], err = strconv.ParseUint(spec.text, spec.base, spec.bits); err != nil {
			return TCPSocket{}, err
		}
	}
	s.TxQueue, s.RxQueue, s.UID, s.Inode = uint32(nums[0]), uint32(nums[1]), uint32(nums[2]), nums[3]
	return s, nil
}

// parseHexAddrPort parses "ADDR:PORT" where ADDR is 8 (IPv4) or 32
// (IPv6) hex digits and PORT 4. The kernel prints each 32-bit word of
// the address as a host-order integer, so on x86-64 the bytes of each
// word come reversed.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	addrHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q has no ':'", s)
	}
	raw, err := hex.DecodeString(addrHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("invalid address %q", addrHex)
	}
	for i := 0; i < len(raw); i += 4 {
		word := binary.BigEndian.Uint32(raw[i:])
		binary.NativeEndian.PutUint32(raw[i:], word)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
