package dump

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// allowedDevices are the character devices whose open files the restore
// reopens by path: they hold no state of their own.
var allowedDevices = map[uint64]string{
	unix.Mkdev(1, 3): "/dev/null",
	unix.Mkdev(1, 5): "/dev/zero",
	unix.Mkdev(1, 7): "/dev/full",
	unix.Mkdev(1, 8): "/dev/random",
	unix.Mkdev(1, 9): "/dev/urandom",
	unix.Mkdev(5, 0): "/dev/tty",
	unix.Mkdev(5, 1): "/dev/console",
}

// anonKinds names the anonymous-inode files that are rejected for now.
var anonKinds = map[string]string{
	"anon_inode:[eventfd]":   "eventfd",
	"anon_inode:[eventpoll]": "epoll",
	"anon_inode:[timerfd]":   "timerfd",
	"anon_inode:[signalfd]":  "signalfd",
	"anon_inode:inotify":     "inotify",
	"anon_inode:[fanotify]":  "fanotify",
	"anon_inode:[pidfd]":     "pidfd",
	"anon_inode:[io_uring]":  "io_uring",
}

// checkFDs rejects descriptors the restore cannot rebuild. A descriptor
// that a running process closes during the check (ksu check, and the
// pre-check of ksu update, run before the freeze) is not rejected.
func checkFDs(pid int) []*RejectError {
	fds, err := procfs.FDs(procRoot, pid)
	if err != nil {
		return []*RejectError{{PID: pid, Object: "fd table", Kind: "fd", Reason: err.Error()}}
	}
	var out []*RejectError
	for _, fd := range fds {
		if r := checkFD(pid, fd); r != nil && !fdClosed(pid, fd) {
			out = append(out, r)
		}
	}
	return out
}

// fdClosed reports whether descriptor fd of pid is gone from /proc.
func fdClosed(pid, fd int) bool {
	_, err := os.Lstat(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd))
	return errors.Is(err, fs.ErrNotExist)
}

// Limitation: the sockets that checkSocket rejects, the anonymous-inode
// kinds without an entry in anonChecks (inotify, fanotify, pidfd,
// io_uring) and other ttys are rejected; each needs its own record in
// the snapshot and its own rebuild step in the restore.
func checkFD(pid, fd int) *RejectError {
	link := fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd)
	object := fmt.Sprintf("fd %d", fd)
	target, err := os.Readlink(link)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: "fd", Reason: err.Error()}
	}
	switch {
	case strings.HasPrefix(target, "socket:"):
		return checkSocket(pid, fd, object, target)
	case strings.HasPrefix(target, "pipe:"):
		return nil
	case strings.HasPrefix(target, "anon_inode:"):
		if check, ok := anonChecks[target]; ok {
			return check(pid, fd)
		}
		kind, ok := anonKinds[target]
		if !ok {
			kind = target
		}
		return notYet(pid, object, kind)
	case strings.HasPrefix(target, "/memfd:"):
		return nil
	case strings.HasSuffix(target, " (deleted)"):
		return checkDeleted(pid, object, link)
	case !strings.HasPrefix(target, "/"):
		return notYet(pid, object, target)
	}
	ref, err := fileRef(link)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: "fd", Reason: err.Error()}
	}
	switch ref.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
		return nil
	case unix.S_IFCHR:
		if _, ok := allowedDevices[ref.Rdev]; ok {
			return nil
		}
		return notYet(pid, object, fmt.Sprintf("character device %d:%d %s", unix.Major(ref.Rdev), unix.Minor(ref.Rdev), target))
	case unix.S_IFIFO:
		return nil
	}
	return notYet(pid, object, fmt.Sprintf("file of mode %#o %s", ref.Mode, target))
}

// fileTable holds the open file descriptions and pipes of all dumped
// processes, so that descriptors sharing a description share its File.
type fileTable struct {
	files []*snapshot.File
	pipes map[uint64]*snapshot.Pipe
	owner map[uint64]fdRef // File.ID to one descriptor that refers to it
	// byInode maps the device and inode of each recorded description to
	// its File.IDs. Recording a TCP or UDP socket clears File.Ref, so
	// lookup cannot match descriptors by File.Ref.
	byInode   map[inodeKey][]uint64
	unixSocks *unixTable // set when the first Unix socket is recorded
	tcp       *tcpTable  // set when established TCP sockets are saved
	objects   *objectTable
}

type fdRef struct{ pid, fd int }

type inodeKey struct{ dev, inode uint64 }

func newFileTable() *fileTable {
	return &fileTable{pipes: map[uint64]*snapshot.Pipe{}, owner: map[uint64]fdRef{},
		byInode: map[inodeKey][]uint64{}, objects: newObjectTable()}
}

// recordFDs records the descriptor table of pid.
func (ft *fileTable) recordFDs(pid int) ([]snapshot.FD, error) {
	fds, err := procfs.FDs(procRoot, pid)
	if err != nil {
		return nil, err
	}
	var out []snapshot.FD
	for _, fd := range fds {
		info, err := procfs.ReadFDInfo(procRoot, pid, fd)
		if err != nil {
			return nil, fmt.Errorf("read fdinfo %d of process %d: %w", fd, pid, err)
		}
		id, err := ft.lookup(pid, fd, info)
		if err != nil {
			return nil, err
		}
		out = append(out, snapshot.FD{Num: int32(fd), CloseOnExec: info.Flags&unix.O_CLOEXEC != 0, File: id})
	}
	return out, nil
}

// lookup returns the File.ID of pid's descriptor fd, recording a new File
// unless kcmp finds that a recorded one is the same description.
func (ft *fileTable) lookup(pid, fd int, info procfs.FDInfo) (uint64, error) {
	link := fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd)
	ref, err := fileRef(link)
	if err != nil {
		return 0, err
	}
	key := inodeKey{ref.Dev, ref.Inode}
	for _, id := range ft.byInode[key] {
		o := ft.owner[id]
		same, err := sys.SameFile(o.pid, pid, o.fd, fd)
		if err != nil {
			return 0, fmt.Errorf("compare fd %d of process %d with fd %d of process %d: %w", fd, pid, o.fd, o.pid, err)
		}
		if same {
			return id, nil
		}
	}
	f := &snapshot.File{ID: uint64(len(ft.files) + 1), Flags: uint32(info.Flags &^ unix.O_CLOEXEC), Pos: info.Pos, Ref: ref}
	if special, err := ft.recordSpecial(pid, fd, info, f); special || err != nil {
		ft.byInode[key] = append(ft.byInode[key], f.ID)
		return f.ID, err
	}
	switch ref.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f.Kind = snapshot.FileRegular
	case unix.S_IFDIR:
		f.Kind = snapshot.FileDirectory
	case unix.S_IFCHR:
		f.Kind = snapshot.FileCharDevice
		f.Ref.Path = allowedDevices[ref.Rdev]
	case unix.S_IFIFO:
		f.Kind = snapshot.FilePipe
		f.PipeID = ref.Inode
		f.Ref.Path = ""
		if _, ok := ft.pipes[ref.Inode]; !ok {
			ft.pipes[ref.Inode] = &snapshot.Pipe{ID: ref.Inode}
		}
	case unix.S_IFSOCK:
		if err := ft.recordSocket(pid, fd, f); err != nil {
			return 0, err
		}
	}
	ft.files = append(ft.files, f)
	ft.owner[f.ID] = fdRef{pid, fd}
	ft.byInode[key] = append(ft.byInode[key], f.ID)
	return f.ID, nil
}
