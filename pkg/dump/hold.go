package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// hold is the SIGSTOP that keeps the dumped processes from running any
// instruction of their own if the dumper dies. The kernel then detaches
// every tracee and wakes it, even one in the middle of an injected call
// with borrowed registers. A process in a group-stop (ptrace.GroupStop)
// stops again before it dequeues any signal, and a watchdog can give
// back what the call borrowed (ptrace.Undo) and resume the process.
//
// A process that a signal had stopped before the freeze (a suspended
// job) is in a group-stop already, gets no SIGSTOP and stays stopped.
//
// The kernel reports a process's group-stop to its parent with a
// SIGCHLD (CLD_STOPPED), and the SIGCONT that ends a failed dump with a
// second one. A parent inside the trees is recorded before its
// children's group-stops, so the first misses the snapshot, and
// dropHeldSignals drops it should the order change. But a shell outside
// the trees would see its foreground job stop and take the terminal
// back. So a foreground job whose parent is outside the trees gets only
// a pending SIGSTOP, after the last injected call (holdLate), which a
// failed dump withdraws before the job ever stops. With ExitTraced, so
// does a SIGCONT from the caller before it detaches.
//
// Limitation: a dumper killed during an injected call into such a
// foreground job leaves it to run on from borrowed registers, and a
// SIGCONT from elsewhere while a call is in flight ends a group-stop
// too. Both windows last as long as one injected call.
type hold struct {
	// sigstopped are the processes the dump sent SIGSTOP to.
	sigstopped map[int]bool
	// late are the foreground jobs that get their SIGSTOP in holdLate.
	late map[int]bool
	// jobStopped are the processes a signal had stopped before.
	jobStopped map[int]bool
}

func newHold() *hold {
	return &hold{sigstopped: map[int]bool{}, late: map[int]bool{}, jobStopped: map[int]bool{}}
}

// stop holds process pid, whose threads the tracer holds in ptrace
// stops, unless a signal stopped it before. held are the processes held
// so far, the parents among them.
func (h *hold) stop(t *ptrace.Tracer, pid int, held map[int]bool) error {
	if h.sigstopped[pid] || h.late[pid] || h.jobStopped[pid] {
		return nil
	}
	stopped, err := groupStopped(t, pid)
	if err != nil {
		return fmt.Errorf("freeze process %d: %w", pid, err)
	}
	if stopped {
		h.jobStopped[pid] = true
		return nil
	}
	st, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return fmt.Errorf("freeze process %d: %w", pid, err)
	}
	if st.TTY != 0 && st.Tpgid == st.Pgrp && !held[st.PPid] {
		h.late[pid] = true
		return nil
	}
	if err := t.GroupStop(pid); err != nil {
		return fmt.Errorf("freeze process %d: %w", pid, err)
	}
	h.sigstopped[pid] = true
	return nil
}

// holdLate queues SIGSTOP to the foreground jobs that stop left out.
// Call it after the last injected call: the tracer never lets them
// dequeue it, so the SIGSTOP stays pending until the tracer detaches or
// dies.
func (h *hold) holdLate() error {
	for pid := range h.late {
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			return fmt.Errorf("stop process %d: %w", pid, err)
		}
		h.sigstopped[pid] = true
	}
	return nil
}

// release sends SIGCONT to every process that the hold sent SIGSTOP to,
// for processes that run on. Call it after the TCP connections left
// repair mode and before the tracer detaches, so that a SIGSTOP still
// pending is discarded without a stop.
func (h *hold) release() error {
	var errs []error
	for pid := range h.sigstopped {
		if err := unix.Kill(pid, unix.SIGCONT); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("resume process %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// siginfo offsets of x86-64: si_code after si_signo and si_errno, and
// si_pid of a SIGCHLD after 4 bytes of padding.
const (
	siginfoCode = 8
	siginfoPID  = 16
)

// cldStopped is the si_code of a SIGCHLD for a child's stop, from
// asm-generic/siginfo.h.
const cldStopped = 5

// dropHeldSignals returns infos without the signals that the hold
// itself caused: its SIGSTOP while still pending, and the SIGCHLD
// (CLD_STOPPED) that a child's group-stop sent.
func (h *hold) dropHeldSignals(pid int, infos []snapshot.Siginfo) []snapshot.Siginfo {
	var out []snapshot.Siginfo
	for _, si := range infos {
		if h.caused(pid, si) {
			continue
		}
		out = append(out, si)
	}
	return out
}

func (h *hold) caused(pid int, si snapshot.Siginfo) bool {
	switch unix.Signal(si.Signal) {
	case unix.SIGSTOP:
		return h.sigstopped[pid]
	case unix.SIGCHLD:
		if len(si.Info) < siginfoPID+4 {
			return false
		}
		code := int32(binary.LittleEndian.Uint32(si.Info[siginfoCode:]))
		child := int(int32(binary.LittleEndian.Uint32(si.Info[siginfoPID:])))
		return code == cldStopped && h.sigstopped[child]
	}
	return false
}
