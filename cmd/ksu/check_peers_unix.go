package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/procfs"
)

// Socket states that sock_diag reports for Unix sockets (include/net/tcp_states.h).
const (
	unixEstablished = 1
	unixListen      = 10
)

// checkSockets applies Dump's rules to the Unix sockets held inside: a
// listener rejects a pending connection from a socket held outside, and
// a connected socket rejects a peer held outside. A socket whose peer is
// an embryo in a listener held inside is kept, and so is a datagram
// socket without a peer. Sockets that sock_diag does not list (other
// families, other network namespaces) are left to the other checks.
func (c *peerCheck) checkSockets() []peerBlocker {
	if len(c.sockets) == 0 {
		return nil
	}
	socks, err := dump.UnixSockets()
	if err != nil {
		h := c.sockets[0]
		return []peerBlocker{{blocker: blocker{PID: h.pid, Object: "unix sockets", Kind: "sock_diag",
			Reason: "read the peers of its Unix sockets: " + err.Error(),
			Hint:   "check again. ksu update checks the peers again once the processes are frozen"}}}
	}
	inside := map[uint32]bool{}
	var firstHolders []heldFile // the first descriptor of each socket, as Dump reports it
	for _, h := range c.sockets {
		if !inside[uint32(h.inode)] {
			firstHolders = append(firstHolders, h)
		}
		inside[uint32(h.inode)] = true
	}
	var out []peerBlocker
	pending := map[uint32]bool{} // sockets whose peer is an embryo of an inside listener
	for _, h := range firstHolders {
		for _, client := range socks[uint32(h.inode)].Pending {
			pending[client] = true
			if !inside[client] {
				out = append(out, pendingBlocker(h, client, socks))
			}
		}
	}
	for _, h := range firstHolders {
		s, ok := socks[uint32(h.inode)]
		if !ok || pending[s.Inode] {
			continue
		}
		if b, found := c.peerBlocker(h, s, socks, inside); found {
			out = append(out, b)
		}
	}
	return out
}

// pendingBlocker reports a connection from client, a socket held outside,
// that waits in the accept queue of listener h.
func pendingBlocker(h heldFile, client uint32, socks map[uint32]dump.UnixSocket) peerBlocker {
	b := unixBlocker(h, fmt.Sprintf("a pending connection comes from socket:[%d]%s, held only outside the selected trees",
		client, boundSuffix(socks[client].Name)), hintPeer)
	return peerBlocker{blocker: b, peer: fmt.Sprintf("socket:[%d]", client)}
}

// peerBlocker reports socket s, held by h, when its peer is held outside.
func (c *peerCheck) peerBlocker(h heldFile, s dump.UnixSocket, socks map[uint32]dump.UnixSocket,
	inside map[uint32]bool) (peerBlocker, bool) {
	if s.Peer == 0 {
		if s.State != unixEstablished || s.Type == unix.SOCK_DGRAM {
			return peerBlocker{}, false
		}
		return embryoBlocker(h, s, socks), true
	}
	if inside[s.Peer] {
		return peerBlocker{}, false
	}
	peer := socks[s.Peer]
	reason := fmt.Sprintf("its peer socket:[%d]%s is held only outside the selected trees", s.Peer, boundSuffix(peer.Name))
	hint := hintPeer
	if peer.Name == c.journal {
		reason = fmt.Sprintf("its peer socket:[%d] is journald's stdout stream (%s), held outside the selected trees",
			s.Peer, peer.Name)
		hint = hintJournal
	}
	return peerBlocker{blocker: unixBlocker(h, reason, hint), peer: fmt.Sprintf("socket:[%d]", s.Peer)}, true
}

// embryoBlocker reports a connected stream socket without a peer socket:
// its peer was closed, or its connection waits in the accept queue of a
// listener held outside. Dump rejects both.
func embryoBlocker(h heldFile, s dump.UnixSocket, socks map[uint32]dump.UnixSocket) peerBlocker {
	for _, l := range socks {
		for _, client := range l.Pending {
			if client == s.Inode {
				reason := fmt.Sprintf("its connection waits in the accept queue of socket:[%d]%s, held only outside the selected trees",
					l.Inode, boundSuffix(l.Name))
				return peerBlocker{blocker: unixBlocker(h, reason, hintPeer), peer: fmt.Sprintf("socket:[%d]", l.Inode)}
			}
		}
	}
	b := unixBlocker(h, "connected to a socket that was closed or that no process holds",
		"restart the connection in the service, or close it")
	return peerBlocker{blocker: b}
}

func unixBlocker(h heldFile, reason, hint string) blocker {
	return blocker{PID: h.pid, Object: fmt.Sprintf("fd %d", h.fd), Kind: fmt.Sprintf("unix socket:[%d]", h.inode),
		Reason: reason, Hint: hint}
}

// boundSuffix returns " bound to NAME" for a bound name, else "".
func boundSuffix(name string) string {
	if name == "" {
		return ""
	}
	return " bound to " + name
}

// maxHoldersNamed bounds the processes named as holders of one peer. A
// peer often has several: journald puts each stdout stream into
// systemd's file descriptor store (seen with Debian bookworm's systemd
// 252), so PID 1 holds the stream too and comes first in /proc order.
const maxHoldersNamed = 3

// nameHolders adds to each blocker's reason up to maxHoldersNamed
// processes outside pids that hold its peer, from one bounded scan of
// /proc.
func nameHolders(found []peerBlocker, pids []int) {
	holders := map[string][]string{}
	for _, f := range found {
		if f.peer != "" {
			holders[f.peer] = nil
		}
	}
	skip := map[int]bool{}
	for _, pid := range pids {
		skip[pid] = true
	}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return
	}
	budget := maxHolderScanFDs
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] || budget <= 0 {
			continue
		}
		budget -= nameHoldersOf(pid, found, holders)
	}
	for i, f := range found {
		if len(holders[f.peer]) > 0 {
			found[i].Reason += " by " + strings.Join(holders[f.peer], " and ")
		}
	}
}

// nameHoldersOf adds pid to holders, once per peer, for each peer of
// found that pid holds: a socket, or a pipe end that the blocker lacks.
// It returns the number of descriptors it read.
func nameHoldersOf(pid int, found []peerBlocker, holders map[string][]string) int {
	fds, err := procfs.FDs(procRoot, pid)
	if err != nil {
		return 0
	}
	named := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd))
		if err != nil {
			continue
		}
		names, wanted := holders[link]
		if !wanted || named[link] || len(names) >= maxHoldersNamed || !holdsEnd(pid, fd, link, found) {
			continue
		}
		named[link] = true
		holders[link] = append(holders[link], fmt.Sprintf("process %d (%s) as fd %d", pid, readComm(pid), fd))
	}
	return len(fds)
}

// holdsEnd reports whether descriptor fd of pid, whose link is link, is
// the peer of a blocker in found: the socket itself, or a pipe end that
// the blocker lacks.
func holdsEnd(pid, fd int, link string, found []peerBlocker) bool {
	for _, f := range found {
		if f.peer != link {
			continue
		}
		if f.ends == 0 {
			return true
		}
		info, err := procfs.ReadFDInfo(procRoot, pid, fd)
		return err == nil && pipeEnds(info.Flags)&f.ends != 0
	}
	return false
}

// readComm returns the command name of pid, or "?" once it has exited.
func readComm(pid int) string {
	st, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return "?"
	}
	return st.Comm
}
