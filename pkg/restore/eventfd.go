package restore

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// openAnon creates the eventfd, timerfd, signalfd or epoll instance of
// sf in the restorer, with its state and status flags. An epoll instance
// gets its interest list later, from inside a process that holds the
// targets (addEpollTargets). dumpedAt is the wall-clock time of the dump.
func openAnon(sf *snapshot.File, dumpedAt time.Time) (*fdFile, error) {
	var f *fdFile
	var err error
	switch {
	case sf.Kind == snapshot.FileEventFD && sf.EventFD != nil:
		f, err = newEventFD(sf.EventFD)
	case sf.Kind == snapshot.FileTimerFD && sf.TimerFD != nil:
		f, err = newTimerFD(sf.TimerFD, dumpedAt)
	case sf.Kind == snapshot.FileSignalFD && sf.SignalFD != nil:
		f, err = newSignalFD(sf.SignalFD)
	case sf.Kind == snapshot.FileEpoll && sf.Epoll != nil:
		fd, cerr := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		f, err = &fdFile{fd, "epoll"}, cerr
	default:
		return nil, fmt.Errorf("file %d of kind %v has no %v state", sf.ID, sf.Kind, sf.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("create %v: %w", sf.Kind, err)
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, int(sf.Flags)); err != nil {
		f.Close()
		return nil, fmt.Errorf("set flags %#o of %v: %w", sf.Flags, sf.Kind, err)
	}
	return f, nil
}

// newEventFD creates an eventfd with the saved count, which goes in with a
// write because eventfd(2) takes only 32 bits of it.
func newEventFD(e *snapshot.EventFD) (*fdFile, error) {
	flags := unix.EFD_CLOEXEC | unix.EFD_NONBLOCK
	if e.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	fd, err := unix.Eventfd(0, flags)
	if err != nil {
		return nil, err
	}
	f := &fdFile{fd, "eventfd"}
	if e.Count != 0 {
		b := binary.LittleEndian.AppendUint64(nil, e.Count)
		if _, err := unix.Write(fd, b); err != nil {
			f.Close()
			return nil, fmt.Errorf("write count %d: %w", e.Count, err)
		}
	}
	return f, nil
}

// newTimerFD creates a timerfd and arms it with the time that was left at
// the dump, so the time the processes spent frozen does not count. A
// TFD_TIMER_ABSTIME timer is armed absolute again, so that
// TFD_TIMER_CANCEL_ON_SET keeps working. On a clock that counts wall
// time it keeps its deadline, because the frozen time passed for that
// clock too. On the other clocks it expires at now plus the time left.
func newTimerFD(t *snapshot.TimerFD, dumpedAt time.Time) (*fdFile, error) {
	fd, err := unix.TimerfdCreate(int(t.Clock), unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := &fdFile{fd, "timerfd"}
	if err := armTimerFD(fd, t, dumpedAt); err != nil {
		f.Close()
		return nil, err
	}
	if t.Ticks != 0 {
		if err := sys.SetTimerfdTicks(fd, t.Ticks); err != nil {
			f.Close()
			return nil, fmt.Errorf("set %d expirations: %w", t.Ticks, err)
		}
	}
	return f, nil
}

func armTimerFD(fd int, t *snapshot.TimerFD, dumpedAt time.Time) error {
	value := t.Value
	if value <= 0 && t.Interval > 0 {
		// A periodic timer that expired and was not read since shows no
		// time left: the kernel moves it on at the next read or
		// timerfd_gettime. Its next expiry is then up to one interval
		// away.
		value = t.Interval
	}
	if value <= 0 {
		return nil // disarmed
	}
	if t.Flags&unix.TFD_TIMER_ABSTIME != 0 {
		deadline, err := absoluteDeadline(t, value, dumpedAt)
		if err != nil {
			return err
		}
		value = deadline
	}
	spec := unix.ItimerSpec{Interval: unix.NsecToTimespec(int64(t.Interval)), Value: unix.NsecToTimespec(int64(value))}
	if err := unix.TimerfdSettime(fd, int(t.Flags), &spec, nil); err != nil {
		return fmt.Errorf("arm for %v every %v (flags %#x): %w", value, t.Interval, t.Flags, err)
	}
	return nil
}

// absoluteDeadline returns the time on t's clock at which it expires
// now: its saved deadline on a wall clock, else now plus the time left at
// the dump. A deadline that passed while the processes were frozen makes
// the timer expire as soon as it is armed. A snapshot without a deadline
// falls back on the time of the dump, which is later than when the time
// left was read.
func absoluteDeadline(t *snapshot.TimerFD, left time.Duration, dumpedAt time.Time) (time.Duration, error) {
	clock := t.Clock
	switch {
	case wallClock(clock) && !t.Deadline.IsZero():
		return time.Duration(t.Deadline.UnixNano()), nil
	case wallClock(clock) && !dumpedAt.IsZero():
		return time.Duration(dumpedAt.UnixNano()) + left, nil
	}
	var now unix.Timespec
	if err := unix.ClockGettime(clock, &now); err != nil {
		return 0, fmt.Errorf("read clock %d: %w", clock, err)
	}
	return time.Duration(now.Nano()) + left, nil
}

// wallClock reports whether clock counts wall time, which goes on while
// the processes are frozen and across a kernel switch.
func wallClock(clock int32) bool {
	return clock == unix.CLOCK_REALTIME || clock == unix.CLOCK_REALTIME_ALARM
}

func newSignalFD(s *snapshot.SignalFD) (*fdFile, error) {
	set := unix.Sigset_t{Val: [16]uint64{s.Mask}}
	fd, err := unix.Signalfd(-1, &set, unix.SFD_CLOEXEC|unix.SFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &fdFile{fd, "signalfd"}, nil
}
