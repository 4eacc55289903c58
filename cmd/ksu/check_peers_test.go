package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// init marks every descriptor that the test binary inherited beyond
// stdio close-on-exec, so that the children of the tests hold only what
// the tests give them: a pipe that a shell or a CI runner leaves open
// would otherwise be a peer outside every tree.
func init() {
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}

// startHolding starts "sleep 60" with files as fds 3, 4, ... and stdout,
// when it is not nil, as fd 1, and kills it by its pid when the test
// ends.
func startHolding(t *testing.T, stdout *os.File, files ...*os.File) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = files
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// startHoldingWriteEnd starts "sleep 60" holding the write end of a new
// pipe as fd 3, and returns its pid and the read end, which only the
// test holds and which closes when the test ends.
func startHoldingWriteEnd(t *testing.T) (int, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	pid := startHolding(t, nil, w)
	w.Close()
	return pid, r
}

// findBlocker returns the blocker of pid on object whose kind starts
// with kind, or fails the test.
func findBlocker(t *testing.T, got []blocker, pid int, object, kind string) blocker {
	t.Helper()
	for _, b := range got {
		if b.PID == pid && b.Object == object && strings.HasPrefix(b.Kind, kind) {
			return b
		}
	}
	t.Fatalf("checkPeers() = %+v, want a blocker of process %d on %s (%s...)", got, pid, object, kind)
	return blocker{}
}

// wantContains fails the test unless field name of b contains each of want.
func wantContains(t *testing.T, name, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("blocker %s = %q, want it to contain %q", name, got, w)
		}
	}
}

func testHolder() string {
	return fmt.Sprintf("process %d (", os.Getpid())
}

func TestCheckPeersPipeOutside(t *testing.T) {
	pid, r := startHoldingWriteEnd(t)

	got := checkPeers([]int{pid}, journalStdout)

	b := findBlocker(t, got, pid, "fd 3", "pipe:[")
	wantContains(t, "reason", b.Reason, "other end is held only outside", testHolder(), fmt.Sprintf("as fd %d", r.Fd()))
	if b.Hint != hintPipe {
		t.Errorf("blocker hint = %q, want %q", b.Hint, hintPipe)
	}
	if len(got) != 1 {
		t.Errorf("checkPeers(%d) returned %d blockers, want 1: %+v", pid, len(got), got)
	}
}

// TestCheckPeersPipeClosed checks that a pipe whose other end nobody
// holds passes, as the dump keeps it: for the write end and the read end.
func TestCheckPeersPipeClosed(t *testing.T) {
	for _, heldRead := range []bool{false, true} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		held, other := w, r
		if heldRead {
			held, other = r, w
		}
		pid := startHolding(t, nil, held)
		held.Close()
		other.Close()

		if got := checkPeers([]int{pid}, journalStdout); len(got) != 0 {
			t.Errorf("checkPeers(%d) with the other end closed (child holds the read end: %v) = %+v, want none", pid, heldRead, got)
		}
	}
}

func TestCheckPeersSocketpair(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	defer ours.Close()
	pid := startHolding(t, nil, theirs)
	theirs.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		t.Fatal(err)
	}

	got := checkPeers([]int{pid}, journalStdout)

	b := findBlocker(t, got, pid, "fd 3", "unix socket:[")
	wantContains(t, "reason", b.Reason, fmt.Sprintf("its peer socket:[%d] is held only outside", st.Ino),
		testHolder(), fmt.Sprintf("as fd %d", fds[0]))
	if b.Hint != hintPeer {
		t.Errorf("blocker hint = %q, want %q", b.Hint, hintPeer)
	}
}

// TestCheckPeersClosedPeer checks a stream socket whose peer was closed:
// the dump rejects it, because the restore cannot rebuild a connection
// to no socket.
func TestCheckPeersClosedPeer(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "theirs")
	pid := startHolding(t, nil, theirs)
	theirs.Close()
	unix.Close(fds[0])

	got := checkPeers([]int{pid}, journalStdout)

	b := findBlocker(t, got, pid, "fd 3", "unix socket:[")
	wantContains(t, "reason", b.Reason, "connected to a socket that was closed")
}

// listen binds a Unix stream listener at a new path and connects a
// client to it. It returns the path, the client's file and the accepted
// connection, or nil when accept is false.
func listen(t *testing.T, accept bool) (string, *os.File, net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdout.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client, err := c.(*net.UnixConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if !accept {
		return path, client, nil
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return path, client, server
}

// TestCheckPeersBoundListener checks a child whose stdout is connected
// to a listener that the test holds: the peer is named by the
// listener's path, and the journald wording applies when that path is
// journald's.
func TestCheckPeersBoundListener(t *testing.T) {
	path, client, _ := listen(t, true)
	pid := startHolding(t, client)
	client.Close()

	tests := []struct {
		journal    string
		wantReason string
		wantHint   string
	}{
		{journal: journalStdout, wantReason: "bound to " + path + " is held only outside", wantHint: hintPeer},
		{journal: path, wantReason: "is journald's stdout stream (" + path + ")", wantHint: hintJournal},
	}
	for _, tt := range tests {
		got := checkPeers([]int{pid}, tt.journal)

		b := findBlocker(t, got, pid, "fd 1", "unix socket:[")
		wantContains(t, "reason", b.Reason, tt.wantReason, testHolder())
		if b.Hint != tt.wantHint {
			t.Errorf("checkPeers(%d, %q) hint = %q, want %q", pid, tt.journal, b.Hint, tt.wantHint)
		}
	}
}

// TestCheckPeersPending checks a child whose stdout is a connection
// that waits in the accept queue of a listener the test holds.
func TestCheckPeersPending(t *testing.T) {
	path, client, _ := listen(t, false)
	pid := startHolding(t, client)
	client.Close()

	got := checkPeers([]int{pid}, journalStdout)

	b := findBlocker(t, got, pid, "fd 1", "unix socket:[")
	wantContains(t, "reason", b.Reason, "waits in the accept queue", "bound to "+path, testHolder())
}

// TestCheckTreeHoldsBothEnds checks that a tree holding both ends of a
// pipe, split between two processes, and of a socketpair passes.
func TestCheckTreeHoldsBothEnds(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	cmd := exec.Command("sh", "-c", "sleep 60 | sleep 61")
	cmd.ExtraFiles = []*os.File{a, b}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sh: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	a.Close()
	b.Close()
	pid := cmd.Process.Pid
	waitTree(t, pid, 3)

	trees := checkTreesDetail([]int{pid})

	if len(trees) != 1 || !trees[0].Preservable {
		t.Errorf("checkTreesDetail(%d) = %+v, want one preservable tree", pid, trees)
	}
}

// waitTree waits, for at most 10 s, until the tree rooted at pid has n
// processes that run what their shell started.
func waitTree(t *testing.T, pid, n int) {
	t.Helper()
	for range 200 {
		pids, err := procfs.Descendants(procRoot, []int{pid}, maxTreeSize)
		if err == nil && len(pids) == n && allSleeping(pids[1:]) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tree of process %d: fewer than %d processes after 10 s", pid, n)
}

// allSleeping reports whether every pid runs sleep, that is, has gone
// past fork and exec.
func allSleeping(pids []int) bool {
	for _, pid := range pids {
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil || st.Comm != "sleep" {
			return false
		}
	}
	return true
}

// TestCheckTreeNamesPeer checks that checkTreesDetail adds the peer
// blockers to the tree of their process.
func TestCheckTreeNamesPeer(t *testing.T) {
	pid, _ := startHoldingWriteEnd(t)

	trees := checkTreesDetail([]int{pid})

	if len(trees) != 1 || trees[0].Preservable {
		t.Fatalf("checkTreesDetail(%d) = %+v, want one tree that is not preservable", pid, trees)
	}
	findBlocker(t, trees[0].Blockers, pid, "fd 3", "pipe:[")
}

func TestParseAnonInode(t *testing.T) {
	tests := []struct {
		link     string
		wantKind string
		wantIno  uint64
		wantOK   bool
	}{
		{"pipe:[42]", "pipe", 42, true},
		{"socket:[14070]", "socket", 14070, true},
		{"anon_inode:[eventfd]", "", 0, false},
		{"/dev/null", "", 0, false},
		{"pipe:[x]", "", 0, false},
		{"pipe:[7", "", 0, false},
	}
	for _, tt := range tests {
		kind, ino, ok := parseAnonInode(tt.link)
		if kind != tt.wantKind || ino != tt.wantIno || ok != tt.wantOK {
			t.Errorf("parseAnonInode(%q) = %q, %d, %v, want %q, %d, %v",
				tt.link, kind, ino, ok, tt.wantKind, tt.wantIno, tt.wantOK)
		}
	}
}
