package dump

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// anonChecks are the pre-checks of the anonymous-inode kinds that the
// snapshot holds, keyed by the descriptor's link target.
var anonChecks = map[string]func(pid, fd int) *RejectError{
	"anon_inode:[eventfd]":   checkEventFD,
	"anon_inode:[eventpoll]": checkEpoll,
	"anon_inode:[timerfd]":   checkFDInfo,
	"anon_inode:[signalfd]":  checkFDInfo,
}

// checkFDInfo rejects a descriptor whose fdinfo cannot be read or parsed.
func checkFDInfo(pid, fd int) *RejectError {
	if _, err := procfs.ReadFDInfo(procRoot, pid, fd); err != nil {
		return &RejectError{PID: pid, Object: fmt.Sprintf("fd %d", fd), Kind: "fdinfo", Reason: err.Error()}
	}
	return nil
}

// checkEventFD rejects an eventfd whose EFD_SEMAPHORE flag the kernel does
// not show.
//
// Limitation: on kernels whose fdinfo lacks the "eventfd-semaphore" line,
// nothing shows whether an eventfd counts as a semaphore, so their
// eventfds are rejected. Probing with a read and a write back would
// change the state that pollers and epoll instances see.
func checkEventFD(pid, fd int) *RejectError {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/fdinfo/%d", procRoot, pid, fd))
	if err != nil {
		return &RejectError{PID: pid, Object: fmt.Sprintf("fd %d", fd), Kind: "eventfd", Reason: err.Error()}
	}
	if !strings.Contains(string(b), "eventfd-semaphore:") {
		return &RejectError{PID: pid, Object: fmt.Sprintf("fd %d", fd), Kind: "eventfd",
			Reason: "the kernel's fdinfo does not show EFD_SEMAPHORE"}
	}
	return checkFDInfo(pid, fd)
}

// recordAnon fills in an anonymous-inode File from the fdinfo of the
// descriptor. It returns false for a kind that it does not handle.
func (ft *fileTable) recordAnon(pid, fd int, info procfs.FDInfo, f *snapshot.File) (bool, error) {
	switch f.Ref.Path {
	case "anon_inode:[eventfd]":
		if info.Eventfd == nil {
			return true, fmt.Errorf("fdinfo %d of process %d: no eventfd count", fd, pid)
		}
		f.Kind = snapshot.FileEventFD
		f.EventFD = &snapshot.EventFD{Count: info.Eventfd.Count, Semaphore: info.Eventfd.Semaphore}
	case "anon_inode:[timerfd]":
		if info.Timerfd == nil {
			return true, fmt.Errorf("fdinfo %d of process %d: no timerfd state", fd, pid)
		}
		tfd := info.Timerfd
		f.Kind = snapshot.FileTimerFD
		f.TimerFD = &snapshot.TimerFD{Clock: int32(tfd.ClockID), Flags: int32(tfd.SettimeFlags),
			Interval: duration(tfd.Interval), Value: duration(tfd.Value), Ticks: tfd.Ticks}
	case "anon_inode:[signalfd]":
		if info.Signalfd == nil {
			return true, fmt.Errorf("fdinfo %d of process %d: no signalfd mask", fd, pid)
		}
		f.Kind = snapshot.FileSignalFD
		f.SignalFD = &snapshot.SignalFD{Mask: info.Signalfd.Sigmask}
	case "anon_inode:[eventpoll]":
		f.Kind = snapshot.FileEpoll
		f.Epoll = &snapshot.Epoll{}
	default:
		return false, nil
	}
	f.Pos = 0
	f.Flags &^= unix.O_LARGEFILE
	return true, nil
}

func duration(ts procfs.Timespec) time.Duration {
	return time.Duration(ts.Sec)*time.Second + time.Duration(ts.Nsec)
}
