package ptrace

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"github.com/ksu-project/ksu/pkg/procfs"
	"golang.org/x/sys/unix"
)

// maxStops bounds the stops one request collects from one thread before
// it gives up, such as the signals a thread takes before it reaches an
// interrupt-stop.
const maxStops = 64

// maxSeizePasses bounds how often SeizeProcess lists a process's threads
// while new ones keep appearing.
const maxSeizePasses = 16

// Seize attaches to thread tid with PTRACE_SEIZE, leaving it running.
// Options are PTRACE_O_* flags; PTRACE_O_SUSPEND_SECCOMP lets injected
// calls bypass the thread's seccomp filters but needs CAP_SYS_ADMIN.
// PTRACE_O_EXITKILL makes the kernel kill the thread if the tracer dies,
// which defeats the point of ksu: leave it out. PTRACE_O_TRACESYSGOOD is
// always added, because Syscall uses it to recognize its syscall-stops.
func (t *Tracer) Seize(tid int, options int) error {
	return t.do(func() error {
		if _, ok := t.threads[tid]; ok {
			return fmt.Errorf("seize thread %d: already attached", tid)
		}
		return t.seize(tid, options)
	})
}

func (t *Tracer) seize(tid int, options int) error {
	st, err := procfs.ReadStatus(t.procRoot, tid)
	if err != nil {
		return fmt.Errorf("seize thread %d: %w", tid, err)
	}
	if err := sys.PtraceSeize(tid, options|unix.PTRACE_O_TRACESYSGOOD); err != nil {
		return fmt.Errorf("seize thread %d: %w", tid, err)
	}
	t.threads[tid] = &thread{tid: tid, tgid: st.Tgid}
	return nil
}

// SetOptions replaces the PTRACE_O_* options of stopped thread tid,
// keeping PTRACE_O_TRACESYSGOOD as Seize does.
func (t *Tracer) SetOptions(tid int, options int) error {
	return t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("set ptrace options: %w", err)
		}
		if err := unix.PtraceSetOptions(tid, options|unix.PTRACE_O_TRACESYSGOOD); err != nil {
			return fmt.Errorf("set ptrace options of thread %d to %#x: %w", tid, options, os.NewSyscallError("ptrace(PTRACE_SETOPTIONS)", err))
		}
		return nil
	})
}

// SeizeProcess seizes every thread of process pid and returns their ids.
// It lists the threads again until a pass finds no new one, so threads
// created meanwhile are caught too, but a process that keeps creating
// threads must be frozen (cgroup freezer) first.
func (t *Tracer) SeizeProcess(pid int, options int) ([]int, error) {
	var tids []int
	err := t.do(func() error {
		for range maxSeizePasses {
			added, err := t.seizeNewTasks(pid, options)
			if err != nil {
				return err
			}
			if added == 0 {
				tids = t.threadsOf(pid)
				return nil
			}
		}
		return fmt.Errorf("seize process %d: new threads still appear after %d passes", pid, maxSeizePasses)
	})
	return tids, err
}

func (t *Tracer) seizeNewTasks(pid int, options int) (int, error) {
	tasks, err := procfs.Tasks(t.procRoot, pid)
	if err != nil {
		return 0, fmt.Errorf("seize process %d: %w", pid, err)
	}
	added := 0
	for _, tid := range tasks {
		if _, ok := t.threads[tid]; ok {
			continue
		}
		err := t.seize(tid, options)
		if errors.Is(err, unix.ESRCH) || errors.Is(err, os.ErrNotExist) {
			continue // The thread exited after the listing.
		}
		if err != nil {
			return added, fmt.Errorf("seize process %d: %w", pid, err)
		}
		added++
	}
	return added, nil
}

// Threads returns the ids of the attached threads of process pid, in
// increasing order.
func (t *Tracer) Threads(pid int) []int {
	var tids []int
	if err := t.do(func() error { tids = t.threadsOf(pid); return nil }); err != nil {
		return nil
	}
	return tids
}

func (t *Tracer) threadsOf(pid int) []int {
	var tids []int
	for tid, th := range t.threads {
		if th.tgid == pid {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	return tids
}

// attached returns the record of thread tid.
func (t *Tracer) attached(tid int) (*thread, error) {
	th, ok := t.threads[tid]
	if !ok {
		return nil, fmt.Errorf("thread %d is not attached", tid)
	}
	return th, nil
}

// stopped returns the record of thread tid, which must be in a stop.
func (t *Tracer) stopped(tid int) (*thread, error) {
	th, err := t.attached(tid)
	if err != nil {
		return nil, err
	}
	if !th.stopped {
		return nil, fmt.Errorf("thread %d is not stopped", tid)
	}
	return th, nil
}

// Interrupt stops thread tid with PTRACE_INTERRUPT and returns the stop
// it reaches: an interrupt-stop, or a group-stop if its process is
// stopped by a signal. A thread that is already stopped stays in its
// stop, which is returned. Signals that arrive first are delivered as if
// no tracer were present (a handler frame is set up, or the default
// action is taken), so the registers read afterwards are the ones the
// thread would run on.
func (t *Tracer) Interrupt(tid int) (Stop, error) {
	var stop Stop
	err := t.do(func() error {
		th, err := t.attached(tid)
		if err != nil {
			return err
		}
		if th.stopped {
			stop = th.stop
			return nil
		}
		if err := unix.PtraceInterrupt(tid); err != nil {
			return fmt.Errorf("interrupt thread %d: %w", tid, os.NewSyscallError("ptrace(PTRACE_INTERRUPT)", err))
		}
		stop, err = t.settle(th)
		return err
	})
	return stop, err
}

// InterruptProcess interrupts every attached thread of process pid. It
// sends all the interrupts before it waits, so the threads stop at about
// the same time. Threads that exit meanwhile are dropped, not reported.
func (t *Tracer) InterruptProcess(pid int) error {
	return t.do(func() error {
		tids := t.threadsOf(pid)
		if len(tids) == 0 {
			return fmt.Errorf("interrupt process %d: no thread attached", pid)
		}
		for _, tid := range tids {
			if t.threads[tid].stopped {
				continue
			}
			if err := unix.PtraceInterrupt(tid); err != nil {
				return fmt.Errorf("interrupt thread %d: %w", tid, os.NewSyscallError("ptrace(PTRACE_INTERRUPT)", err))
			}
		}
		for _, tid := range tids {
			th := t.threads[tid]
			if th.stopped {
				continue
			}
			_, err := t.settle(th)
			if errors.Is(err, ErrExited) {
				continue // The thread exited before it stopped: nothing to hold.
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// settle waits until th reaches an interrupt-stop or a group-stop. Every
// other stop on the way is passed on: a signal is delivered, an event is
// acknowledged. The interrupt is requested again before each resume, so
// the thread traps before it returns to user space.
func (t *Tracer) settle(th *thread) (Stop, error) {
	for range maxStops {
		stop, err := t.waitStop(th)
		if err != nil {
			return stop, err
		}
		var sig unix.Signal
		switch stop.Kind {
		case StopInterrupt, StopGroup:
			return stop, nil
		case StopSignal:
			sig = stop.Signal
		case StopEvent:
			t.noteEvent(th, stop)
		}
		if err := t.resumeTrapped(th, sig); err != nil {
			return stop, err
		}
	}
	return Stop{}, fmt.Errorf("interrupt thread %d: no interrupt-stop after %d other stops", th.tid, maxStops)
}

// resumeTrapped resumes th with signal sig (0 for none) while an
// interrupt is pending, so it stops again before running user code.
func (t *Tracer) resumeTrapped(th *thread, sig unix.Signal) error {
	if err := unix.PtraceInterrupt(th.tid); err != nil {
		return fmt.Errorf("interrupt thread %d: %w", th.tid, os.NewSyscallError("ptrace(PTRACE_INTERRUPT)", err))
	}
	if err := sys.PtraceCont(th.tid, sig); err != nil {
		return fmt.Errorf("resume thread %d: %w", th.tid, err)
	}
	th.stopped = false
	return nil
}

// noteEvent records the thread that a PTRACE_EVENT_CLONE, _FORK or
// _VFORK stop announces: the kernel attached it already.
func (t *Tracer) noteEvent(th *thread, stop Stop) {
	switch stop.Event {
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
	default:
		return
	}
	msg, err := unix.PtraceGetEventMsg(th.tid)
	if err != nil {
		return
	}
	child := int(msg)
	tgid := child
	if st, err := procfs.ReadStatus(t.procRoot, child); err == nil {
		tgid = st.Tgid
	}
	t.threads[child] = &thread{tid: child, tgid: tgid}
}

// Resume lets stopped thread tid run again. A thread of a process that
// a signal stopped, even one that ran injected calls since, stays in its
// group-stop (PTRACE_LISTEN) and reports its next stop when the process
// is continued.
func (t *Tracer) Resume(tid int) error {
	return t.do(func() error { return t.resume(tid) })
}

func (t *Tracer) resume(tid int) error {
	th, err := t.stopped(tid)
	if err != nil {
		return fmt.Errorf("resume thread %d: %w", tid, err)
	}
	if th.stop.Kind == StopGroup {
		err = sys.PtraceListen(tid)
	} else {
		err = sys.PtraceCont(tid, 0)
	}
	if err != nil {
		return fmt.Errorf("resume thread %d: %w", tid, err)
	}
	th.stopped = false
	return nil
}

// ResumeProcess resumes every stopped, attached thread of process pid.
func (t *Tracer) ResumeProcess(pid int) error {
	return t.do(func() error {
		for _, tid := range t.threadsOf(pid) {
			if !t.threads[tid].stopped {
				continue
			}
			if err := t.resume(tid); err != nil {
				return err
			}
		}
		return nil
	})
}

// Detach detaches from thread tid, interrupting it first if it runs,
// because the kernel detaches only stopped tracees. A thread whose
// process is in a group-stop goes back into it.
func (t *Tracer) Detach(tid int) error {
	return t.do(func() error { return t.detach(tid) })
}

func (t *Tracer) detach(tid int) error {
	th, err := t.attached(tid)
	if err != nil {
		return fmt.Errorf("detach thread %d: %w", tid, err)
	}
	if !th.stopped {
		if err := unix.PtraceInterrupt(tid); err != nil {
			return fmt.Errorf("detach thread %d: %w", tid, os.NewSyscallError("ptrace(PTRACE_INTERRUPT)", err))
		}
		if _, err := t.settle(th); err != nil {
			return fmt.Errorf("detach thread %d: %w", tid, err)
		}
	}
	delete(t.threads, tid)
	if err := sys.PtraceDetach(tid, 0); err != nil {
		return fmt.Errorf("detach thread %d: %w", tid, err)
	}
	return nil
}

// DetachProcess detaches from every attached thread of process pid. It
// tries every thread and returns the first error.
func (t *Tracer) DetachProcess(pid int) error {
	return t.do(func() error { return t.detachTids(t.threadsOf(pid)) })
}

func (t *Tracer) detachAll() error {
	tids := make([]int, 0, len(t.threads))
	for tid := range t.threads {
		tids = append(tids, tid)
	}
	return t.detachTids(tids)
}

func (t *Tracer) detachTids(tids []int) error {
	var first error
	for _, tid := range tids {
		if err := t.detach(tid); err != nil && first == nil {
			first = err
		}
	}
	return first
}
