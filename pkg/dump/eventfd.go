package dump

import (
	"encoding/binary"
	"fmt"
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

// checkEventFD rejects an eventfd whose fdinfo cannot be read. Whether
// it counts as a semaphore is probed at dump time when the kernel does
// not show it (see eventfdSemaphore).
func checkEventFD(pid, fd int) *RejectError {
	return checkFDInfo(pid, fd)
}

// maxEventFDCount is the largest count an eventfd holds. A write that
// would pass it blocks.
const maxEventFDCount = 1<<64 - 2

// eventfdSemaphore reports whether eventfd fd of the frozen process pid
// counts as a semaphore (EFD_SEMAPHORE), for kernels whose fdinfo does
// not say. It reads the counter once through a copy of the descriptor:
// a semaphore gives 1, a plain eventfd its whole count. The counter is
// raised to at least 2 first so that the two cases differ, and put back
// to count afterwards.
//
// The probe wakes the eventfd's pollers twice. Pollers inside the
// dumped tree are stopped and, after a restore, find the same count; an
// edge-triggered epoll instance may report one extra EPOLLIN or EPOLLOUT
// event, as it does anyway when the restore adds the eventfd to it.
//
// Limitation: a process outside the dumped tree, or the kernel (AIO,
// io_uring, KVM irqfd), that writes the eventfd during the probe makes
// the result and the count wrong. Dumping on a kernel that prints
// eventfd-semaphore avoids the probe.
func eventfdSemaphore(pid, fd int, count uint64) (bool, error) {
	if count > maxEventFDCount-2 {
		return false, fmt.Errorf("probe eventfd %d of process %d: count %d too close to its maximum", fd, pid, count)
	}
	efd, err := socketCopy(pid, fd)
	if err != nil {
		return false, err
	}
	defer unix.Close(efd)

	added := uint64(0)
	if count < 2 {
		added = 2 - count
		if err := eventfdWrite(efd, added); err != nil {
			return false, fmt.Errorf("probe eventfd %d of process %d: %w", fd, pid, err)
		}
	}
	got, err := eventfdRead(efd)
	if err != nil {
		return false, fmt.Errorf("probe eventfd %d of process %d: %w", fd, pid, err)
	}

	semaphore := got == 1
	if err := putEventFDBack(efd, semaphore, count, added); err != nil {
		return false, fmt.Errorf("restore count of eventfd %d of process %d after the probe: %w", fd, pid, err)
	}
	return semaphore, nil
}

// putEventFDBack sets the counter of efd back to count after one probing
// read, when added was written before it.
func putEventFDBack(efd int, semaphore bool, count, added uint64) error {
	if !semaphore {
		if count == 0 {
			return nil
		}
		return eventfdWrite(efd, count)
	}
	if err := eventfdWrite(efd, 1); err != nil {
		return err
	}
	for range added {
		if _, err := eventfdRead(efd); err != nil {
			return err
		}
	}
	return nil
}

func eventfdWrite(efd int, n uint64) error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], n)
	if _, err := unix.Write(efd, b[:]); err != nil {
		return fmt.Errorf("write %d: %w", n, err)
	}
	return nil
}

func eventfdRead(efd int) (uint64, error) {
	var b [8]byte
	if _, err := unix.Read(efd, b[:]); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// recordAnon fills in an anonymous-inode File from the fdinfo of the
// descriptor. It returns false for a kind that it does not handle.
func (ft *fileTable) recordAnon(pid, fd int, info procfs.FDInfo, f *snapshot.File) (bool, error) {
	switch f.Ref.Path {
	case "anon_inode:[eventfd]":
		if info.Eventfd == nil {
			return true, fmt.Errorf("fdinfo %d of process %d: no eventfd count", fd, pid)
		}
		semaphore := info.Eventfd.Semaphore
		if !info.Eventfd.SemaphoreShown {
			var err error
			if semaphore, err = eventfdSemaphore(pid, fd, info.Eventfd.Count); err != nil {
				return true, err
			}
		}
		f.Kind = snapshot.FileEventFD
		f.EventFD = &snapshot.EventFD{Count: info.Eventfd.Count, Semaphore: semaphore}
	case "anon_inode:[timerfd]":
		if info.Timerfd == nil {
			return true, fmt.Errorf("fdinfo %d of process %d: no timerfd state", fd, pid)
		}
		tfd := info.Timerfd
		f.Kind = snapshot.FileTimerFD
		f.TimerFD = &snapshot.TimerFD{Clock: int32(tfd.ClockID), Flags: int32(tfd.SettimeFlags),
			Interval: duration(tfd.Interval), Value: duration(tfd.Value), Ticks: tfd.Ticks}
		f.TimerFD.Deadline = wallDeadline(f.TimerFD)
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

// wallDeadline returns when an armed TFD_TIMER_ABSTIME timer on a
// wall clock expires next, from the time left that fdinfo just showed,
// or the zero time for any other timer. The snapshot's Meta.Time is read
// later, after every process is collected, so it cannot serve as the
// reference.
func wallDeadline(t *snapshot.TimerFD) time.Time {
	wall := t.Clock == unix.CLOCK_REALTIME || t.Clock == unix.CLOCK_REALTIME_ALARM
	if !wall || t.Flags&unix.TFD_TIMER_ABSTIME == 0 || t.Value <= 0 {
		return time.Time{}
	}
	return time.Now().Add(t.Value)
}

func duration(ts procfs.Timespec) time.Duration {
	return time.Duration(ts.Sec)*time.Second + time.Duration(ts.Nsec)
}
