package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// allSignals is a signal mask that blocks every signal that can be
// blocked. SIGTRAP is blocked too: an injected call stops at syscall-stops
// that carry no signal (ptrace.Tracer.Syscall), so no forced SIGTRAP meets
// the mask and resets the handler to SIG_DFL, as force_sig_info_to_task
// in kernel/signal.c would.
const allSignals = ^uint64(0)

// blockAll blocks every signal in every thread of p with
// PTRACE_SETSIGMASK, so that the signals and timers the restore queues
// or arms stay pending while further calls are injected. A signal taken
// during an injected call would run the process's handler early.
// unblockAll puts the saved masks back.
func (rs *restorer) blockAll(p *snapshot.Process) error {
	for _, th := range p.Threads {
		if err := rs.t.SetSigmask(int(th.TID), allSignals); err != nil {
			return fmt.Errorf("block signals of thread %d: %w", th.TID, err)
		}
	}
	return nil
}

// unblockAll sets the saved signal mask of every thread of p. It is the
// last change before the threads resume, so it injects nothing.
func (rs *restorer) unblockAll(p *snapshot.Process) error {
	for _, th := range p.Threads {
		if err := rs.t.SetSigmask(int(th.TID), th.SigMask); err != nil {
			return fmt.Errorf("set signal mask of thread %d: %w", th.TID, err)
		}
	}
	return nil
}

// queuePending queues the pending signals of p again, process-wide ones
// with rt_sigqueueinfo and thread-directed ones with rt_tgsigqueueinfo,
// in their saved order and with their saved siginfo. Each call runs in
// the thread that receives the signal: the kernel lets a task forge the
// siginfo of a kill(2) or tgkill(2) (si_code SI_USER or SI_TKILL) only
// for signals it sends to itself.
//
// Limitation: a signal that a POSIX timer had queued becomes an ordinary
// queued signal. If the restored timer expires before the process takes
// it, the process sees two signals where the old kernel would have shown
// one with the overrun count raised.
func (rs *restorer) queuePending(p *snapshot.Process) error {
	pid := int(p.PID)
	for _, si := range p.Pending {
		if err := rs.poke(pid, 0, si.Info); err != nil {
			return err
		}
		if _, err := rs.t.Syscall(pid, unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(si.Signal), uintptr(rs.scratch())); err != nil {
			return fmt.Errorf("queue pending signal %d: %w", si.Signal, err)
		}
	}
	for _, th := range p.Threads {
		for _, si := range th.Pending {
			if err := rs.poke(pid, 0, si.Info); err != nil {
				return err
			}
			if _, err := rs.t.Syscall(int(th.TID), unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(th.TID),
				uintptr(si.Signal), uintptr(rs.scratch())); err != nil {
				return fmt.Errorf("queue pending signal %d for thread %d: %w", si.Signal, th.TID, err)
			}
		}
	}
	return nil
}

// finishSignals queues the pending signals of p and arms its timers,
// with every signal but SIGTRAP blocked until unblockAll.
func (rs *restorer) finishSignals(p *snapshot.Process) error {
	if err := rs.blockAll(p); err != nil {
		return err
	}
	if err := rs.queuePending(p); err != nil {
		return err
	}
	if err := rs.createPosixTimers(p); err != nil {
		return err
	}
	return rs.setItimers(p)
}
