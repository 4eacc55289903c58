package ptrace

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// ErrExited is returned when a thread exits or is killed while the tracer
// holds it. The tracer then drops its record of the thread.
var ErrExited = errors.New("thread exited")

// ErrTimeout is returned when a thread does not report a stop within the
// tracer's wait timeout.
var ErrTimeout = errors.New("timed out waiting for a ptrace stop")

// StopKind is the kind of ptrace stop a thread is in.
type StopKind int

const (
	// StopInterrupt is the PTRACE_EVENT_STOP trap that PTRACE_INTERRUPT
	// causes, or that a thread seized while stopped reports.
	StopInterrupt StopKind = iota + 1
	// StopGroup is a group-stop: the whole process was stopped by
	// SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU.
	StopGroup
	// StopSignal is a signal-delivery-stop: the thread is about to take
	// Signal.
	StopSignal
	// StopSyscall is a syscall-enter-stop or syscall-exit-stop, reported
	// with PTRACE_O_TRACESYSGOOD.
	StopSyscall
	// StopEvent is a PTRACE_EVENT_* stop other than PTRACE_EVENT_STOP,
	// such as PTRACE_EVENT_CLONE.
	StopEvent
)

var stopKindNames = map[StopKind]string{
	StopInterrupt: "interrupt-stop",
	StopGroup:     "group-stop",
	StopSignal:    "signal-delivery-stop",
	StopSyscall:   "syscall-stop",
	StopEvent:     "event-stop",
}

func (k StopKind) String() string {
	if name, ok := stopKindNames[k]; ok {
		return name
	}
	return fmt.Sprintf("StopKind(%d)", int(k))
}

// Stop describes a ptrace stop.
type Stop struct {
	Kind StopKind
	// Signal is the stop signal wait reported: the signal about to be
	// delivered for StopSignal, the stopping signal for StopGroup, and
	// SIGTRAP otherwise.
	Signal unix.Signal
	// Event is the PTRACE_EVENT_* value for StopEvent and StopInterrupt.
	Event int
}

func (s Stop) String() string {
	switch s.Kind {
	case StopSignal, StopGroup:
		return fmt.Sprintf("%v (%v)", s.Kind, unix.SignalName(s.Signal))
	case StopEvent:
		return fmt.Sprintf("%v (event %d)", s.Kind, s.Event)
	}
	return s.Kind.String()
}

// decodeStop interprets the status of a stopped tracee, following the
// "Stopped states" rules of ptrace(2) for a thread attached with
// PTRACE_SEIZE.
func decodeStop(ws unix.WaitStatus) Stop {
	sig := ws.StopSignal()
	event := int(ws>>16) & 0xff
	switch {
	case sig == unix.SIGTRAP|0x80:
		return Stop{Kind: StopSyscall, Signal: unix.SIGTRAP}
	case event == unix.PTRACE_EVENT_STOP && isStopSignal(sig):
		return Stop{Kind: StopGroup, Signal: sig, Event: event}
	case event == unix.PTRACE_EVENT_STOP:
		return Stop{Kind: StopInterrupt, Signal: sig, Event: event}
	case event != 0:
		return Stop{Kind: StopEvent, Signal: sig, Event: event}
	}
	return Stop{Kind: StopSignal, Signal: sig}
}

func isStopSignal(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return true
	}
	return false
}

// spinPolls is how many times waitStop polls without sleeping before it
// starts to back off. A stop after a single step or an interrupt usually
// arrives within tens of microseconds, well below the resolution of a
// sleep.
const spinPolls = 200

// waitStop waits for the next stop of th and records it. It polls with
// WNOHANG so that a thread that never stops costs a timeout, not a
// tracer blocked forever.
func (t *Tracer) waitStop(th *thread) (Stop, error) {
	deadline := time.Now().Add(t.waitTimeout)
	pause := 10 * time.Microsecond
	for poll := 0; ; poll++ {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(th.tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return Stop{}, fmt.Errorf("wait for thread %d: %w", th.tid, os.NewSyscallError("wait4", err))
		case wpid == th.tid:
			return t.record(th, ws)
		case time.Now().After(deadline):
			return Stop{}, fmt.Errorf("wait for thread %d: %w after %v", th.tid, ErrTimeout, t.waitTimeout)
		}
		if poll < spinPolls {
			runtime.Gosched()
			continue
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// record updates th from a wait status.
func (t *Tracer) record(th *thread, ws unix.WaitStatus) (Stop, error) {
	switch {
	case ws.Exited():
		delete(t.threads, th.tid)
		return Stop{}, fmt.Errorf("thread %d: %w with status %d", th.tid, ErrExited, ws.ExitStatus())
	case ws.Signaled():
		delete(t.threads, th.tid)
		return Stop{}, fmt.Errorf("thread %d: %w, killed by %v", th.tid, ErrExited, unix.SignalName(ws.Signal()))
	case !ws.Stopped():
		return Stop{}, fmt.Errorf("wait for thread %d: unexpected status %#x", th.tid, uint32(ws))
	}
	th.stopped = true
	th.stop = decodeStop(ws)
	return th.stop, nil
}
