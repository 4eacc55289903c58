package restore

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// maxTimerFillers bounds how many timers createPosixTimer creates and
// deletes again to reach a saved timer id.
const maxTimerFillers = 1 << 16

// Scratch offsets of the POSIX timer calls' arguments.
const (
	sigeventSize   = 64
	timerIDOffset  = sigeventSize
	itimerspecOffs = timerIDOffset + 8
)

// setItimers arms the saved interval timers of p with injected
// setitimer calls, with the time that was left at the dump.
func (rs *restorer) setItimers(p *snapshot.Process) error {
	pid := int(p.PID)
	for _, it := range p.Itimers {
		b := make([]byte, 32) // struct itimerval: interval, then value
		putTimeval(b[0:], it.Interval)
		putTimeval(b[16:], it.Value)
		if err := rs.poke(pid, 0, b); err != nil {
			return err
		}
		if _, err := rs.t.Syscall(pid, unix.SYS_SETITIMER, uintptr(it.Which), uintptr(rs.scratch()), 0); err != nil {
			return fmt.Errorf("arm interval timer %d: %w", it.Which, err)
		}
	}
	return nil
}

// createPosixTimers creates the saved POSIX timers of p with their saved
// ids and arms them with the time that was left at the dump.
//
// timer_create gives a new process the ids 0, 1, 2 and so on (Linux 6.1
// to 6.18 allocate them from a per-process counter), so the timers are
// created in id order and every id below a saved one is taken by a
// filler timer that is deleted once all saved timers exist.
//
// Limitation: the overrun count of a timer is not restored (no system
// call sets it), and the process's next timer_create gets the id after
// the highest restored one, which may differ from what the old kernel
// would have given.
func (rs *restorer) createPosixTimers(p *snapshot.Process) error {
	timers := slices.Clone(p.PosixTimers)
	slices.SortFunc(timers, func(a, b snapshot.PosixTimer) int { return int(a.ID) - int(b.ID) })
	var fillers []int32
	for _, tm := range timers {
		made, err := rs.createPosixTimer(p, tm)
		fillers = append(fillers, made...)
		if err != nil {
			return err
		}
	}
	for _, id := range fillers {
		if _, err := rs.t.Syscall(int(p.PID), unix.SYS_TIMER_DELETE, uintptr(id)); err != nil {
			return fmt.Errorf("delete filler timer %d: %w", id, err)
		}
	}
	return nil
}

// createPosixTimer creates timers until timer_create returns tm.ID, then
// arms that timer. It returns the ids of the other timers it created.
func (rs *restorer) createPosixTimer(p *snapshot.Process, tm snapshot.PosixTimer) ([]int32, error) {
	pid := int(p.PID)
	if err := rs.poke(pid, 0, sigevent(tm)); err != nil {
		return nil, err
	}
	var fillers []int32
	for range maxTimerFillers {
		if _, err := rs.t.Syscall(pid, unix.SYS_TIMER_CREATE, uintptr(tm.Clock), uintptr(rs.scratch()),
			uintptr(rs.scratch()+timerIDOffset)); err != nil {
			return fillers, fmt.Errorf("create POSIX timer %d: %w", tm.ID, err)
		}
		id, err := rs.peekInt32(pid, timerIDOffset)
		if err != nil {
			return fillers, err
		}
		if id == tm.ID {
			return fillers, rs.armPosixTimer(pid, tm)
		}
		fillers = append(fillers, id)
		if id > tm.ID {
			return fillers, fmt.Errorf("create POSIX timer %d: timer_create returned id %d, past the saved one", tm.ID, id)
		}
	}
	return fillers, fmt.Errorf("create POSIX timer %d: id not reached after %d timers", tm.ID, maxTimerFillers)
}

func (rs *restorer) armPosixTimer(pid int, tm snapshot.PosixTimer) error {
	if tm.Value == 0 {
		return nil
	}
	b := make([]byte, 32) // struct itimerspec: interval, then value
	putTimespec(b[0:], tm.Interval)
	putTimespec(b[16:], tm.Value)
	if err := rs.poke(pid, itimerspecOffs, b); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_TIMER_SETTIME, uintptr(tm.ID), 0, uintptr(rs.scratch()+itimerspecOffs), 0); err != nil {
		return fmt.Errorf("arm POSIX timer %d: %w", tm.ID, err)
	}
	return nil
}

// sigevent returns the struct sigevent of tm: sigev_value, sigev_signo,
// sigev_notify, then the thread id for SIGEV_THREAD_ID.
func sigevent(tm snapshot.PosixTimer) []byte {
	b := make([]byte, sigeventSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], tm.SigevValue)
	le.PutUint32(b[8:], uint32(tm.Signal))
	le.PutUint32(b[12:], uint32(tm.Notify))
	le.PutUint32(b[16:], uint32(tm.NotifyTID))
	return b
}

// peekInt32 reads an int32 from the scratch memory of pid at offset off.
func (rs *restorer) peekInt32(pid int, off uint64) (int32, error) {
	mem, err := rs.mem(int32(pid))
	if err != nil {
		return 0, err
	}
	b := make([]byte, 4)
	if _, err := mem.ReadAt(b, int64(rs.scratch()+off)); err != nil {
		return 0, fmt.Errorf("read stub scratch memory of process %d: %w", pid, err)
	}
	return int32(binary.LittleEndian.Uint32(b)), nil
}

func putTimeval(b []byte, d time.Duration) {
	binary.LittleEndian.PutUint64(b, uint64(d/time.Second))
	binary.LittleEndian.PutUint64(b[8:], uint64(d%time.Second/time.Microsecond))
}

func putTimespec(b []byte, d time.Duration) {
	binary.LittleEndian.PutUint64(b, uint64(d/time.Second))
	binary.LittleEndian.PutUint64(b[8:], uint64(d%time.Second))
}
