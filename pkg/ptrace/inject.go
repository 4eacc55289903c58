package ptrace

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/ksu-project/ksu/pkg/procfs"
	"golang.org/x/sys/unix"
)

// syscallInsn is the x86-64 syscall instruction.
var syscallInsn = []byte{0x0f, 0x05}

// maxVDSOSize bounds how much of a [vdso] mapping Syscall reads while it
// looks for a syscall instruction.
const maxVDSOSize = 64 << 10

// SetSyscallSite records that address addr of process pid contains a
// syscall instruction (0f 05) that Syscall may use, such as one in the
// restorer's stub. Syscall checks the bytes before every use and looks
// for another site when they change.
func (t *Tracer) SetSyscallSite(pid int, addr uintptr) error {
	return t.do(func() error {
		t.sites[pid] = addr
		return nil
	})
}

// Syscall runs system call nr with up to six arguments inside stopped
// thread tid and returns the kernel's return value. When that value is a
// negated errno, Syscall returns it as an unix.Errno error as well. The
// thread's registers, signal mask and memory are as before afterwards,
// except for what the call itself changes, and the thread stays stopped.
//
// Syscall points rip at a syscall instruction in the process. It takes
// the one set with SetSyscallSite, else one in the vDSO, else the one
// just before rip when the thread stopped inside a call. Without any of
// these it writes one over the two bytes at rip and restores them
// afterwards. It single-steps the thread over that one instruction, so
// no code of the process runs. The patching path requires every other
// thread that could run the code at rip to be stopped as well.
//
// A signal that the thread takes before the instruction runs is
// delivered as if no tracer were present, with the thread's own
// registers. The call is then retried on top of the handler frame, and
// the thread starts its handler when resumed. A signal that arrives
// during the call stays pending.
//
// Injecting a call that itself waits (read on an empty pipe, futex
// wait) blocks the tracer until the wait timeout, and one that installs
// restart state (nanosleep, poll) replaces the restart state of a call
// the thread was stopped in.
//
// Limitation: a tracer death during the call is not survivable. The
// kernel detaches the thread and wakes it. Unless something else holds
// it, the thread runs on from the injected registers (and, on the
// patching path, over the two patched bytes) and typically crashes.
// After the single-step, the trap flag also stays set and raises
// SIGTRAP one instruction later. A group-stop in effect, a pending
// SIGSTOP or a frozen cgroup v2 would hold every such thread in the
// kernel instead, and a second tracer could put the registers back
// (detaching clears the trap flag). But a single-step SIGTRAP stop that
// the tracer has not yet collected with wait still delivers SIGTRAP,
// which kills the process. TestIntegrationTracerDeathStates measures
// each case. Closing the window needs three changes. The tree must be
// group-stopped during the dump, since a frozen cgroup also blocks the
// injected call. The call must run with PTRACE_SYSCALL under
// PTRACE_O_TRACESYSGOOD instead of a single-step. A watchdog must get
// the saved registers and bytes before each call and put them back.
// Between calls the thread is in an interrupt-stop with its own
// registers, so a tracer death there is harmless.
func (t *Tracer) Syscall(tid int, nr uintptr, args ...uintptr) (uintptr, error) {
	if len(args) > 6 {
		return 0, fmt.Errorf("inject %s into thread %d: %d arguments, want at most 6", SyscallName(nr), tid, len(args))
	}
	var ret uintptr
	err := t.do(func() error {
		th, err := t.stopped(tid)
		if err != nil {
			return fmt.Errorf("inject %s: %w", SyscallName(nr), err)
		}
		ret, err = t.inject(th, nr, args)
		if err != nil {
			return fmt.Errorf("inject %s into thread %d: %w", SyscallName(nr), tid, err)
		}
		return nil
	})
	if errno := -int64(ret); err == nil && errno > 0 && errno <= 4095 {
		err = fmt.Errorf("%s in thread %d: %w", SyscallName(nr), tid, unix.Errno(-ret))
	}
	return ret, err
}

// inject runs the call, retrying after every signal the thread takes
// before the call runs.
func (t *Tracer) inject(th *thread, nr uintptr, args []uintptr) (uintptr, error) {
	for range maxStops {
		saved, err := getRegs(th.tid)
		if err != nil {
			return 0, err
		}
		if saved.Cs != userCS64 {
			return 0, fmt.Errorf("thread runs 32-bit code (cs %#x), but only x86-64 is supported", saved.Cs)
		}
		site, undo, err := t.syscallSite(th, &saved)
		if err != nil {
			return 0, err
		}
		res, err := t.step(th, site, &saved, nr, args)
		if err := errors.Join(err, undo()); err != nil {
			return 0, err
		}
		if res.done {
			// Leave the single-step SIGTRAP stop for an
			// interrupt-stop. The PTRACE_CONT on the way clears
			// the trap flag, which a tracer death would leave set
			// to raise SIGTRAP one instruction later.
			return res.ret, t.resumeAgain(th)
		}
		if res.deliver == 0 {
			if err := t.resumeAgain(th); err != nil {
				return 0, err
			}
			continue
		}
		// The thread dequeued a signal before the call ran. Deliver it
		// with the thread's own registers, restored by step, and stop
		// again before the handler runs.
		if err := t.resumeTrapped(th, res.deliver); err != nil {
			return 0, err
		}
		if _, err := t.settle(th); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no attempt ran the call in %d tries: signals keep arriving", maxStops)
}

// stepResult is the outcome of one attempt to run an injected call.
type stepResult struct {
	// done is true when the call ran and ret is its result.
	done bool
	ret  uintptr
	// deliver is the signal the thread dequeued before the call ran, or
	// 0 when another stop (such as a group-stop) came first.
	deliver unix.Signal
}

// step sets the registers for the call, single-steps the syscall
// instruction at site and puts the saved registers back.
func (t *Tracer) step(th *thread, site uintptr, saved *Regs, nr uintptr, args []uintptr) (stepResult, error) {
	regs := callRegs(saved, site, nr, args)
	if err := setRegs(th.tid, regs); err != nil {
		return stepResult{}, err
	}
	after, stop, err := t.singleStep(th)
	if errors.Is(err, ErrExited) {
		return stepResult{}, err
	}
	if err := errors.Join(err, setRegs(th.tid, *saved)); err != nil {
		return stepResult{}, err
	}
	switch {
	case stop.Kind == StopSignal && stop.Signal == unix.SIGTRAP && after.Rip == uint64(site)+2:
		return stepResult{done: true, ret: uintptr(after.Rax)}, nil
	case after.Rip != uint64(site):
		return stepResult{}, fmt.Errorf("unexpected %v at rip %#x after a step from %#x", stop, after.Rip, site)
	case stop.Kind != StopSignal:
		return stepResult{}, nil
	case isFault(stop.Signal):
		// The fault is ours, not the process's: leave its stop
		// without delivering it.
		delete(t.sites, th.tgid)
		err := fmt.Errorf("syscall site %#x faults with %v", site, unix.SignalName(stop.Signal))
		return stepResult{}, errors.Join(err, t.resumeAgain(th))
	}
	return stepResult{deliver: stop.Signal}, nil
}

// callRegs returns saved changed to run call nr at site. Orig_rax -1
// keeps the kernel from treating the thread as inside a call it must
// restart before the step.
func callRegs(saved *Regs, site uintptr, nr uintptr, args []uintptr) Regs {
	regs := *saved
	regs.Rip = uint64(site)
	regs.Rax = uint64(nr)
	regs.Orig_rax = ^uint64(0)
	dst := []*uint64{&regs.Rdi, &regs.Rsi, &regs.Rdx, &regs.R10, &regs.R8, &regs.R9}
	for i, arg := range args {
		*dst[i] = uint64(arg)
	}
	return regs
}

// singleStep executes one instruction of th and returns the registers
// and the stop that follow.
func (t *Tracer) singleStep(th *thread) (Regs, Stop, error) {
	if err := unix.PtraceSingleStep(th.tid); err != nil {
		return Regs{}, Stop{}, fmt.Errorf("single-step thread %d: %w", th.tid, os.NewSyscallError("ptrace(PTRACE_SINGLESTEP)", err))
	}
	th.stopped = false
	stop, err := t.waitStop(th)
	if err != nil {
		return Regs{}, stop, err
	}
	regs, err := getRegs(th.tid)
	return regs, stop, err
}

// resumeAgain brings th from a stop that interrupted a step back to an
// interrupt-stop, so inject can retry.
func (t *Tracer) resumeAgain(th *thread) error {
	if th.stop.Kind == StopInterrupt {
		return nil
	}
	if err := t.resumeTrapped(th, 0); err != nil {
		return err
	}
	_, err := t.settle(th)
	return err
}

// isFault reports whether sig is one the instruction at the site raises
// itself when the site is not a valid, executable syscall instruction.
func isFault(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL:
		return true
	}
	return false
}

// syscallSite returns the address of a syscall instruction for th to run
// and a function that undoes any change made to provide it.
func (t *Tracer) syscallSite(th *thread, regs *Regs) (uintptr, func() error, error) {
	noUndo := func() error { return nil }
	if !t.forcePatch {
		if site, ok := t.knownSite(th); ok {
			return site, noUndo, nil
		}
		if regs.Restart() != RestartNone || int64(regs.Orig_rax) >= 0 {
			if site := uintptr(regs.Rip - 2); t.isSyscallInsn(th.tid, site) {
				return site, noUndo, nil
			}
		}
	}
	return t.patchSite(th.tid, uintptr(regs.Rip))
}

// knownSite returns the cached site of th's process if it still holds
// a syscall instruction, and otherwise looks for one in the vDSO.
func (t *Tracer) knownSite(th *thread) (uintptr, bool) {
	if site, ok := t.sites[th.tgid]; ok && t.isSyscallInsn(th.tid, site) {
		return site, true
	}
	delete(t.sites, th.tgid)
	site, err := t.vdsoSite(th)
	if err != nil {
		return 0, false
	}
	t.sites[th.tgid] = site
	return site, true
}

func (t *Tracer) isSyscallInsn(tid int, addr uintptr) bool {
	insn := make([]byte, len(syscallInsn))
	return peek(tid, addr, insn) == nil && bytes.Equal(insn, syscallInsn)
}

// vdsoSite finds the bytes 0f 05 in the vDSO of th's process. They need
// not start an instruction of the vDSO's own code: jumping to them runs
// them as a syscall instruction all the same.
func (t *Tracer) vdsoSite(th *thread) (uintptr, error) {
	maps, err := procfs.ReadMaps(t.procRoot, th.tid)
	if err != nil {
		return 0, err
	}
	for _, m := range maps {
		if m.Path != "[vdso]" || !m.Perms.Exec {
			continue
		}
		code := make([]byte, min(m.Size(), maxVDSOSize))
		if _, err := ReadMemory(th.tgid, uintptr(m.Start), code); err != nil {
			return 0, err
		}
		if i := bytes.Index(code, syscallInsn); i >= 0 {
			return uintptr(m.Start) + uintptr(i), nil
		}
	}
	return 0, fmt.Errorf("no syscall instruction in the vDSO of process %d", th.tgid)
}

// patchSite writes a syscall instruction at addr, normally the thread's
// rip, and returns a function that writes the original bytes back.
func (t *Tracer) patchSite(tid int, addr uintptr) (uintptr, func() error, error) {
	orig := make([]byte, len(syscallInsn))
	if err := peek(tid, addr, orig); err != nil {
		return 0, nil, fmt.Errorf("save code for a syscall instruction: %w", err)
	}
	if err := poke(tid, addr, syscallInsn); err != nil {
		return 0, nil, fmt.Errorf("write a syscall instruction: %w", err)
	}
	undo := func() error {
		if err := poke(tid, addr, orig); err != nil {
			return fmt.Errorf("restore code under the syscall instruction: %w", err)
		}
		return nil
	}
	return addr, undo, nil
}
