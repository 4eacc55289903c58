package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
)

// GroupStop puts process pid, whose threads are all attached and
// stopped, into a group-stop, as a SIGSTOP without a tracer would, and
// keeps it there. Before each call that Syscall injects into the
// process, a thread outside the group-stop is brought back into it: a
// SIGCONT may have ended the group-stop.
//
// While a group-stop is in effect, a thread that its dead tracer lets go
// stops again before it dequeues any signal, so it takes no handler
// with borrowed registers and waits for Undo. A merely pending SIGSTOP
// does not do that: a handled signal numbered below it, or one sent to
// the thread, is delivered first.
//
// The kernel reports the group-stop to the parent with a SIGCHLD
// (CLD_STOPPED), as it does any stop of a child.
func (t *Tracer) GroupStop(pid int) error {
	return t.do(func() error {
		tids := t.threadsOf(pid)
		if len(tids) == 0 {
			return fmt.Errorf("group-stop process %d: no thread attached", pid)
		}
		t.keepStopped[pid] = true
		for _, tid := range tids {
			if err := t.enterGroupStop(t.threads[tid]); err != nil {
				return fmt.Errorf("group-stop process %d: %w", pid, err)
			}
		}
		return nil
	})
}

// enterGroupStop brings stopped thread th into a group-stop. It first
// lets th trap again, which puts it into a group-stop that is in effect
// or starting. The recorded stop may be stale: after a SIGCONT, a
// seized thread stays in its stop and traps as an interrupt-stop only
// when resumed. Without a group-stop, enterGroupStop sends SIGSTOP to th
// and resumes th without an interrupt, so that th dequeues the SIGSTOP,
// and any signal before it, in the kernel with its own registers.
func (t *Tracer) enterGroupStop(th *thread) error {
	for range maxStops {
		if err := t.resumeTrapped(th, 0); err != nil {
			return err
		}
		if _, err := t.settle(th); err != nil || th.stop.Kind == StopGroup {
			return err
		}
		if err := unix.Tgkill(th.tgid, th.tid, unix.SIGSTOP); err != nil {
			return fmt.Errorf("send SIGSTOP to thread %d: %w", th.tid, err)
		}
		if err := sys.PtraceCont(th.tid, 0); err != nil {
			return fmt.Errorf("resume thread %d: %w", th.tid, err)
		}
		th.stopped = false
		stop, err := t.waitStop(th)
		if err != nil {
			return err
		}
		if err := t.passOn(th, stop); err != nil {
			return err
		}
	}
	return fmt.Errorf("thread %d: no group-stop after %d stops", th.tid, maxStops)
}

// passOn handles a stop that th reached on its way to a group-stop: it
// delivers a signal (a SIGSTOP starts the group-stop), acknowledges an
// event, and leaves th in its next interrupt-stop or group-stop.
func (t *Tracer) passOn(th *thread, stop Stop) error {
	var sig unix.Signal
	switch stop.Kind {
	case StopGroup, StopInterrupt:
		return nil
	case StopSignal:
		sig = stop.Signal
	case StopEvent:
		t.noteEvent(th, stop)
	}
	if err := t.resumeTrapped(th, sig); err != nil {
		return err
	}
	_, err := t.settle(th)
	if errors.Is(err, ErrExited) {
		return err
	}
	if err != nil {
		return fmt.Errorf("thread %d after %v: %w", th.tid, stop, err)
	}
	return nil
}

// keepHeld brings th back into the group-stop of its process before an
// injected call, if GroupStop holds that process.
func (t *Tracer) keepHeld(th *thread) error {
	if !t.keepStopped[th.tgid] {
		return nil
	}
	if err := t.enterGroupStop(th); err != nil {
		return fmt.Errorf("keep process %d in its group-stop: %w", th.tgid, err)
	}
	return nil
}
