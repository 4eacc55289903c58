package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// hold is the SIGSTOP that keeps the dumped processes from running any
// instruction of their own if the dumper dies. The kernel then detaches
// every tracee and wakes it, even one in the middle of an injected call
// with borrowed registers. The pending SIGSTOP stops each thread again
// before it returns to user space, and so does the group-stop that
// starts when the first injected call dequeues it. A watchdog can then
// give back what the call borrowed (ptrace.Undo) and resume the process.
//
// A process that a signal had stopped before the freeze (a suspended
// job) is in a group-stop already, gets no SIGSTOP and stays stopped.
//
// NOTE: once the group-stop is complete, the kernel sends the parent a
// SIGCHLD with CLD_STOPPED, and the SIGCONT that ends a failed dump a
// second one with CLD_CONTINUED. A parent inside the trees is recorded
// before its children's first injected call, so the first misses the
// snapshot, and dropHeldSignals drops it should the order change. A
// parent outside them, such as a shell, sees both and may report the
// job as stopped.
type hold struct {
	// sigstopped are the processes the dump sent SIGSTOP to.
	sigstopped map[int]bool
	// jobStopped are the processes a signal had stopped before.
	jobStopped map[int]bool
}

func newHold() *hold {
	return &hold{sigstopped: map[int]bool{}, jobStopped: map[int]bool{}}
}

// stop sends SIGSTOP to process pid, whose threads the tracer holds in
// ptrace stops, unless a signal stopped it before.
func (h *hold) stop(t *ptrace.Tracer, pid int) error {
	if h.sigstopped[pid] || h.jobStopped[pid] {
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
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		return fmt.Errorf("freeze process %d: send SIGSTOP: %w", pid, err)
	}
	h.sigstopped[pid] = true
	return nil
}

// release sends SIGCONT to every process that stop sent SIGSTOP to, for
// processes that run on. It also discards a SIGSTOP still pending. Call
// it once the tracer has detached, and after the TCP connections left
// repair mode.
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
