package dump

import (
	"fmt"
	"os"
	"syscall"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// checkEpoll rejects an epoll instance with a target that is no longer
// in the process's descriptor table under the number it was added with.
// The restore adds every target again with an injected epoll_ctl, which
// needs the target open at that number in the same process.
//
// Limitation: a target closed after EPOLL_CTL_ADD while another
// descriptor keeps its file open stays in the kernel's interest list but
// cannot be added again, so it is rejected. Adding it through a
// temporary descriptor that is closed afterwards would lift it, at the
// price of a tfd that differs from the saved one.
func checkEpoll(pid, fd int) *RejectError {
	object := fmt.Sprintf("fd %d", fd)
	info, err := procfs.ReadFDInfo(procRoot, pid, fd)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: "epoll", Reason: err.Error()}
	}
	for _, tgt := range info.Epoll {
		ino, err := fdInode(pid, tgt.FD)
		if err != nil || ino != tgt.Ino {
			return &RejectError{PID: pid, Object: object, Kind: "epoll",
				Reason: fmt.Sprintf("target fd %d (inode %d) is not in the fd table: closed after it was added", tgt.FD, tgt.Ino)}
		}
	}
	return nil
}

func fdInode(pid, fd int) (uint64, error) {
	fi, err := os.Stat(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd))
	if err != nil {
		return 0, err
	}
	return fi.Sys().(*syscall.Stat_t).Ino, nil
}

// recordEpollTargets records the interest list of epoll File f, found at
// descriptor fd of pid, and the Files of its targets.
//
// Preconditions: f is in ft.files, so that looking up its targets does
// not hand out f's ID again.
func (ft *fileTable) recordEpollTargets(pid, fd int, info procfs.FDInfo, f *snapshot.File) error {
	for _, tgt := range info.Epoll {
		tinfo, err := procfs.ReadFDInfo(procRoot, pid, tgt.FD)
		if err != nil {
			return fmt.Errorf("read fdinfo %d of process %d, target of epoll fd %d: %w", tgt.FD, pid, fd, err)
		}
		id, err := ft.lookup(pid, tgt.FD, tinfo)
		if err != nil {
			return err
		}
		f.Epoll.Targets = append(f.Epoll.Targets, snapshot.EpollTarget{
			FD: int32(tgt.FD), File: id, Events: tgt.Events, Data: tgt.Data})
	}
	return nil
}
