package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/procfs"
)

// journalStdout is the socket that systemd connects a unit's stdout and
// stderr to by default (StandardOutput=journal). Its accepted connections
// carry the listener's name, so a service's peer reports this path.
const journalStdout = "/run/systemd/journal/stdout"

// maxHolderScanFDs bounds the scan of /proc for the processes that hold
// the peers found outside the trees. The scan only names those holders,
// so a machine with more descriptors gets blockers without a holder.
const maxHolderScanFDs = 1 << 20

// Hints of the peer checks.
const (
	hintPeer    = "preserve the peer's process too, or close the connection"
	hintJournal = "set StandardOutput= and StandardError= of the unit to append:FILE, " +
		"file:FILE or null, or preserve it another way"
	hintPipe = "preserve the process at the other end too, or close the pipe"
)

// heldFile is a pipe or socket held by descriptor fd of process pid.
type heldFile struct {
	pid, fd int
	inode   uint64
	flags   int // open flags from fdinfo, read for pipes only
}

// peerCheck finds the pipes and Unix sockets of a set of processes whose
// other end is held outside the set, the way Dump rejects them once the
// processes are frozen, but from /proc and sock_diag without stopping
// anything.
type peerCheck struct {
	pipes   []heldFile
	sockets []heldFile
	journal string // path of journald's stdout stream listener
}

// checkPeers returns a blocker for each pipe and connected Unix socket of
// pids whose other end some process outside pids holds. journal is the
// path that journald's stdout stream listener is bound to, which gets its
// own hint.
func checkPeers(pids []int, journal string) []blocker {
	c := peerCheck{journal: journal}
	for _, pid := range pids {
		c.addProcess(pid)
	}
	found := c.checkPipes()
	found = append(found, c.checkSockets()...)
	if len(found) > 0 {
		nameHolders(found, pids)
	}
	out := make([]blocker, 0, len(found))
	for _, f := range found {
		out = append(out, f.blocker)
	}
	return out
}

// peerBlocker is a blocker whose other end, the file with link text
// peer ("pipe:[N]" or "socket:[N]"), is held outside the selected trees.
type peerBlocker struct {
	blocker
	peer string
	// ends are the pipe ends of peer that an outside holder must hold to
	// be named (1 the read end, 2 the write end), or 0 for a socket.
	ends int
}

// addProcess records the pipes and sockets of pid. A process that exits
// meanwhile, or a zombie, holds none.
func (c *peerCheck) addProcess(pid int) {
	fds, err := procfs.FDs(procRoot, pid)
	if err != nil {
		return
	}
	for _, fd := range fds {
		kind, ino, ok := readAnonInode(pid, fd)
		switch {
		case !ok:
		case kind == "pipe":
			info, err := procfs.ReadFDInfo(procRoot, pid, fd)
			if err == nil {
				c.pipes = append(c.pipes, heldFile{pid: pid, fd: fd, inode: ino, flags: info.Flags})
			}
		case kind == "socket":
			c.sockets = append(c.sockets, heldFile{pid: pid, fd: fd, inode: ino})
		}
	}
}

// readAnonInode parses the link of descriptor fd of pid when it has the
// form "pipe:[N]" or "socket:[N]".
func readAnonInode(pid, fd int) (kind string, ino uint64, ok bool) {
	link, err := os.Readlink(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd))
	if err != nil {
		return "", 0, false
	}
	return parseAnonInode(link)
}

// parseAnonInode splits "pipe:[N]" or "socket:[N]" into its kind and
// inode.
func parseAnonInode(link string) (kind string, ino uint64, ok bool) {
	kind, rest, found := strings.Cut(link, ":[")
	if !found || kind != "pipe" && kind != "socket" || !strings.HasSuffix(rest, "]") {
		return "", 0, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	if err != nil {
		return "", 0, false
	}
	return kind, ino, true
}

// checkPipes applies Dump's rule to pipes: a pipe whose two ends are not
// both held inside is rejected unless nobody holds the missing end.
func (c *peerCheck) checkPipes() []peerBlocker {
	ends := map[uint64]int{} // pipe inode to a bit set: 1 read end, 2 write end
	for _, p := range c.pipes {
		ends[p.inode] |= pipeEnds(p.flags)
	}
	var out []peerBlocker
	for _, p := range c.pipes {
		if ends[p.inode] == 3 {
			continue
		}
		heldEnds := ends[p.inode]
		ends[p.inode] = 3 // report each pipe once
		closed, err := dump.PipePeerClosed(p.pid, p.fd, heldEnds == 1)
		if errors.Is(err, fs.ErrNotExist) || closed {
			continue
		}
		b := blocker{PID: p.pid, Object: fmt.Sprintf("fd %d", p.fd), Kind: fmt.Sprintf("pipe:[%d]", p.inode),
			Reason: "its other end is held only outside the selected trees", Hint: hintPipe}
		if err != nil {
			b.Reason, b.Hint = err.Error(), "check again"
		}
		out = append(out, peerBlocker{blocker: b, peer: fmt.Sprintf("pipe:[%d]", p.inode),
			ends: 3 &^ heldEnds})
	}
	return out
}

// pipeEnds returns the ends of a pipe that a description with open flags
// holds: 1 the read end, 2 the write end.
func pipeEnds(flags int) int {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		return 1
	case unix.O_WRONLY:
		return 2
	}
	return 3
}

// addPeerBlockers runs checkPeers over the processes of all trees
// together, since ksu update dumps them together, and adds each blocker
// to the tree of its process.
func addPeerBlockers(trees []treeCheck, journal string) {
	var pids []int
	treeOf := map[int]int{}
	for i, t := range trees {
		pids = append(pids, t.PIDs...)
		for _, pid := range t.PIDs {
			treeOf[pid] = i
		}
	}
	for _, b := range checkPeers(pids, journal) {
		t := &trees[treeOf[b.PID]]
		t.Blockers = appendNew(t.Blockers, b)
	}
}
