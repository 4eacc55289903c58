package dump

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// recordSpecial records File f of descriptor fd of pid when it is one of
// the kinds that need more than a path: eventfd, epoll, timerfd,
// signalfd, memfd, a deleted file or a named FIFO. It adds f to the
// table and returns true then; it returns false for the other kinds.
func (ft *fileTable) recordSpecial(pid, fd int, info procfs.FDInfo, f *snapshot.File) (bool, error) {
	ok, err := ft.recordAnon(pid, fd, info, f)
	if err != nil || !ok {
		ok, err = ft.recordObjectFile(pid, fd, f)
	}
	if err != nil || !ok {
		return ok, err
	}
	ft.files = append(ft.files, f)
	ft.owner[f.ID] = fdRef{pid, fd}
	if f.Kind == snapshot.FileEpoll {
		return true, ft.recordEpollTargets(pid, fd, info, f)
	}
	return true, nil
}

// recordObjectFile records a memfd, a deleted file or a named FIFO.
func (ft *fileTable) recordObjectFile(pid, fd int, f *snapshot.File) (bool, error) {
	target := f.Ref.Path
	switch {
	case strings.HasPrefix(target, "/memfd:"):
		id, err := ft.objects.memfd(pid, fd, f.Ref)
		f.Kind, f.ShmID = snapshot.FileMemfd, id
		return true, err
	case f.Ref.Mode&unix.S_IFMT == unix.S_IFREG && strings.HasSuffix(target, deletedSuffix):
		id, err := ft.objects.deletedFile(fdPath(pid, fd), f.Ref)
		f.Kind, f.ShmID = snapshot.FileRegular, id
		return true, err
	case f.Ref.Mode&unix.S_IFMT == unix.S_IFIFO && strings.HasPrefix(target, "/"):
		f.Kind, f.PipeID = snapshot.FileFIFO, fifoID(ft, f.Ref)
		if _, ok := ft.pipes[f.PipeID]; !ok {
			ft.pipes[f.PipeID] = &snapshot.Pipe{ID: f.PipeID}
		}
		return true, nil
	}
	return false, nil
}
