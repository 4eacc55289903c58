package dump

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// sigevNotify maps the notify names of /proc/PID/timers to SIGEV_*.
var sigevNotify = map[string]int32{"signal": 0, "none": 1, "thread": 2}

// sigevThreadID is the SIGEV_THREAD_ID flag of sigev_notify.
const sigevThreadID = 4

// recordItimers reads the armed interval timers of process pid with
// injected getitimer calls, because /proc does not show them.
func recordItimers(t *ptrace.Tracer, s *scratch, pid int) ([]snapshot.Itimer, error) {
	var out []snapshot.Itimer
	for which := range 3 {
		if _, err := t.Syscall(pid, unix.SYS_GETITIMER, uintptr(which), s.addr); err != nil {
			return nil, fmt.Errorf("read interval timer %d of process %d: %w", which, pid, err)
		}
		b, err := s.read(32) // struct itimerval: interval, then value
		if err != nil {
			return nil, err
		}
		it := snapshot.Itimer{Which: int32(which), Interval: timeval(b[0:]), Value: timeval(b[16:])}
		if it.Value != 0 {
			out = append(out, it)
		}
	}
	return out, nil
}

// recordPosixTimers reads the POSIX timers of process pid: the sigevent
// from /proc/PID/timers, the time left and the interval with injected
// timer_gettime, and the overrun with timer_getoverrun.
func recordPosixTimers(t *ptrace.Tracer, s *scratch, pid int) ([]snapshot.PosixTimer, error) {
	timers, err := procfs.ReadTimers(procRoot, pid)
	if err != nil {
		return nil, err
	}
	var out []snapshot.PosixTimer
	for _, tm := range timers {
		pt, err := toPosixTimer(pid, tm)
		if err != nil {
			return nil, err
		}
		if _, err := t.Syscall(pid, unix.SYS_TIMER_GETTIME, uintptr(tm.ID), s.addr); err != nil {
			return nil, fmt.Errorf("read POSIX timer %d of process %d: %w", tm.ID, pid, err)
		}
		b, err := s.read(32) // struct itimerspec: interval, then value
		if err != nil {
			return nil, err
		}
		pt.Interval, pt.Value = timespec(b[0:]), timespec(b[16:])
		overrun, err := t.Syscall(pid, unix.SYS_TIMER_GETOVERRUN, uintptr(tm.ID))
		if err != nil {
			return nil, fmt.Errorf("read overrun of POSIX timer %d of process %d: %w", tm.ID, pid, err)
		}
		pt.Overrun = int32(overrun)
		out = append(out, pt)
	}
	return out, nil
}

func toPosixTimer(pid int, tm procfs.Timer) (snapshot.PosixTimer, error) {
	notify, ok := sigevNotify[tm.Notify]
	if !ok {
		return snapshot.PosixTimer{}, &RejectError{PID: pid, Object: fmt.Sprintf("posix timer %d", tm.ID),
			Kind: "timer_create timer", Reason: fmt.Sprintf("unknown notification %q", tm.Notify)}
	}
	pt := snapshot.PosixTimer{ID: int32(tm.ID), Clock: int32(tm.ClockID), Notify: notify,
		Signal: int32(tm.Signal), SigevValue: tm.Value}
	if tm.ThreadID {
		pt.Notify |= sigevThreadID
		pt.NotifyTID = int32(tm.NotifyPid)
	}
	return pt, nil
}

func timeval(b []byte) time.Duration {
	return time.Duration(le64(b))*time.Second + time.Duration(le64(b[8:]))*time.Microsecond
}

func timespec(b []byte) time.Duration {
	return time.Duration(le64(b))*time.Second + time.Duration(le64(b[8:]))
}
