package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/ksu-project/ksu/pkg/netconf"
	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// linkWait bounds the wait for the saved network devices to register
// after their drivers are loaded. virtio-net registers within
// milliseconds of its module load; slower drivers may need seconds.
const linkWait = 5 * time.Second

// bringUpNetwork applies the snapshot's links, addresses and routes and
// drops the packets of its TCP connections until the restore rebuilds
// their sockets and lifts the drop. Without the addresses the rebuilt
// sockets cannot bind, and without the drop the new kernel sends resets
// in reply to the peers' retransmissions. Failures are logged, not returned:
// the restore then reports the connections it could not rebuild, and the
// boot goes on.
func (b *boot) bringUpNetwork() error {
	if _, err := os.Stat(initramfs.SnapshotDir + "/" + snapshot.HeaderName); err != nil {
		b.log.Printf("no snapshot in %s: network left to the real init", initramfs.SnapshotDir)
		return nil
	}
	meta, conns, err := scanNetwork(os.DirFS(initramfs.SnapshotDir))
	if err != nil {
		b.log.Logf(klog.LevelErr, "network not restored: %v", err)
		return nil
	}
	// The drop goes in first, so that no packet of a connection meets
	// its address before its socket exists.
	if len(conns) > 0 {
		if err := netlock.Lock(conns); err != nil {
			b.log.Logf(klog.LevelErr, "%v", err)
		} else {
			b.log.Printf("dropping the packets of %d tcp connections until the restore", len(conns))
		}
	}
	if err := netconf.Apply(meta.Links, meta.Routes, linkWait); err != nil {
		b.log.Logf(klog.LevelWarning, "network partly restored: %v", err)
	}
	b.log.Printf("network: %d links, %d routes applied", len(meta.Links), len(meta.Routes))
	return nil
}

// scanNetwork reads the snapshot's Meta and the connections of its
// TCP sockets in repair state, which come before any page contents.
func scanNetwork(fsys fs.FS) (snapshot.Meta, []netlock.Conn, error) {
	ar, err := snapshot.OpenCPIO(fsys, ".")
	if err != nil {
		return snapshot.Meta{}, nil, err
	}
	defer ar.Close()
	rd, err := snapshot.NewReader(ar, snapshot.ReaderOptions{})
	if err != nil {
		return snapshot.Meta{}, nil, fmt.Errorf("read snapshot: %w", err)
	}
	defer rd.Close()
	var conns []netlock.Conn
	for {
		sec, err := rd.Next()
		if errors.Is(err, io.EOF) || err == nil && sec.Type == snapshot.SectionPages {
			return rd.Meta(), conns, nil
		}
		if err != nil {
			return rd.Meta(), nil, fmt.Errorf("read snapshot: %w", err)
		}
		if sec.Type != snapshot.SectionFile {
			continue
		}
		f, err := sec.File()
		if err != nil {
			return rd.Meta(), nil, fmt.Errorf("read snapshot: %w", err)
		}
		if f.Kind != snapshot.FileTCPSocket || f.Socket == nil || f.Socket.TCP == nil {
			continue
		}
		c, err := lockedConn(f.Socket)
		if err != nil {
			return rd.Meta(), nil, fmt.Errorf("tcp socket %d: %w", f.ID, err)
		}
		conns = append(conns, c)
	}
}

// lockedConn returns the connection of s, whose addresses are struct
// sockaddr_in or sockaddr_in6 bytes as getsockname returns them.
func lockedConn(s *snapshot.Socket) (netlock.Conn, error) {
	local, err := sockaddrAddrPort(s.Local)
	if err != nil {
		return netlock.Conn{}, err
	}
	remote, err := sockaddrAddrPort(s.Remote)
	if err != nil {
		return netlock.Conn{}, err
	}
	return netlock.Conn{Local: local, Remote: remote}, nil
}

func sockaddrAddrPort(b []byte) (netip.AddrPort, error) {
	switch len(b) {
	case 16:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), nil
	case 28:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])), nil
	}
	return netip.AddrPort{}, fmt.Errorf("socket address of %d bytes is not IPv4 or IPv6", len(b))
}
