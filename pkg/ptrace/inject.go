package ptrace

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/ksu-project/ksu/pkg/failpoint"
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
// afterwards. It resumes the thread with PTRACE_SYSCALL, which stops it
// at the entry and at the exit of that one call, so no code of the
// process runs. The patching path requires every other thread that
// could run the code at rip to be stopped as well.
//
// A signal that the thread takes before the instruction runs is
// delivered as if no tracer were present, with the thread's own
// registers. The call is then retried on top of the handler frame, and
// the thread starts its handler when resumed. A signal that arrives
// during the call is delivered the same way after it.
//
// Injecting a call that itself waits (read on an empty pipe, futex
// wait) blocks the tracer until the wait timeout, and one that installs
// restart state (nanosleep, poll) replaces the restart state of a call
// the thread was stopped in.
//
// If the tracer's process dies during the call, the kernel detaches the
// thread and wakes it with the borrowed registers (and, on the patching
// path, over the patched bytes). Two things make that survivable. The
// Journal (WithJournal) gets the thread's own registers and code before
// they change, for Undo to put back. And the thread must not run on
// before Undo reaches it: a group-stop in effect or a pending SIGSTOP
// stops it in the kernel on its way out (TestIntegrationTracerDeathStates
// measures each state). A frozen cgroup would hold it too, but it also
// blocks the injected call itself. The syscall-stops that
// PTRACE_O_TRACESYSGOOD marks carry no signal for the kernel to deliver
// when the tracer is gone, which a single-step's SIGTRAP would.
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
		if err := t.keepHeld(th); err != nil {
			return 0, err
		}
		saved, err := getRegs(th.tid)
		if err != nil {
			return 0, err
		}
		if saved.Cs != userCS64 {
			return 0, fmt.Errorf("thread runs 32-bit code (cs %#x), but only x86-64 is supported", saved.Cs)
		}
		inj, err := t.syscallSite(th, &saved)
		if err != nil {
			return 0, err
		}
		res, err := t.attempt(th, inj, nr, args)
		if err != nil {
			return 0, err
		}
		if res.done {
			// Leave the syscall-exit-stop for an interrupt-stop, in
			// which the thread's registers are its own again.
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

// attempt passes inj to the journal, patches the site if inj has code,
// runs one step and puts everything back. The journal learns of the
// return once the thread has its own state again or is gone, also when
// the step failed.
func (t *Tracer) attempt(th *thread, inj Injection, nr uintptr, args []uintptr) (stepResult, error) {
	if err := t.journal.Borrow(inj); err != nil {
		return stepResult{}, fmt.Errorf("journal the call: %w", err)
	}
	if len(inj.Code) > 0 {
		if err := poke(th.tid, inj.Site, syscallInsn); err != nil {
			return stepResult{}, fmt.Errorf("write a syscall instruction: %w", err)
		}
	}
	res, err := t.step(th, inj.Site, &inj.Regs, nr, args)
	exited := errors.Is(err, ErrExited)
	codeBack := true
	if len(inj.Code) > 0 && !exited {
		if perr := poke(th.tid, inj.Site, inj.Code); perr != nil {
			err = errors.Join(err, fmt.Errorf("restore code under the syscall instruction: %w", perr))
			codeBack = false
		}
	}
	restored := exited
	if !exited && codeBack {
		regs, rerr := getRegs(th.tid)
		restored = rerr == nil && regs == inj.Regs
	}
	if restored {
		if jerr := t.journal.Return(th.tid); jerr != nil {
			err = errors.Join(err, fmt.Errorf("journal the call: %w", jerr))
		}
	}
	if err != nil {
		return stepResult{}, err
	}
	return res, nil
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

// Failpoints (pkg/failpoint) inside an injected call, where tests kill
// the tracer's process: with the call's registers set, at the call's
// syscall-enter-stop and at its syscall-exit-stop. Each fails the call
// once it has run and the thread has its registers back.
const (
	PointBorrowed = "inject-borrowed"
	PointEnter    = "inject-enter"
	PointExit     = "inject-exit"
)

// step sets the registers for the call, runs the syscall instruction at
// site from its syscall-enter-stop to its syscall-exit-stop and puts
// the saved registers back.
func (t *Tracer) step(th *thread, site uintptr, saved *Regs, nr uintptr, args []uintptr) (stepResult, error) {
	regs := callRegs(saved, site, nr, args)
	if err := setRegs(th.tid, regs); err != nil {
		return stepResult{}, err
	}
	failed := failpoint.Check(PointBorrowed)
	stop, err := t.syscallStop(th)
	if errors.Is(err, ErrExited) {
		return stepResult{}, err
	}
	if err == nil && stop.Kind == StopSyscall {
		ret, err := t.runCall(th, site)
		if errors.Is(err, ErrExited) {
			return stepResult{}, err
		}
		if err := errors.Join(failed, err, setRegs(th.tid, *saved)); err != nil {
			return stepResult{}, err
		}
		return stepResult{done: true, ret: ret}, nil
	}
	var after Regs
	if err == nil {
		after, err = getRegs(th.tid)
	}
	if err := errors.Join(failed, err, setRegs(th.tid, *saved)); err != nil {
		return stepResult{}, err
	}
	switch {
	case after.Rip != uint64(site):
		return stepResult{}, fmt.Errorf("unexpected %v at rip %#x after a resume at %#x", stop, after.Rip, site)
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

// runCall takes th from the syscall-enter-stop of the call at site to
// its syscall-exit-stop and returns the call's result.
func (t *Tracer) runCall(th *thread, site uintptr) (uintptr, error) {
	regs, err := getRegs(th.tid)
	if err != nil {
		return 0, err
	}
	if end := uint64(site) + uint64(len(syscallInsn)); regs.Rip != end {
		return 0, fmt.Errorf("syscall-enter-stop at rip %#x, want %#x", regs.Rip, end)
	}
	failed := failpoint.Check(PointEnter)
	stop, err := t.syscallStop(th)
	if err != nil {
		return 0, err
	}
	if stop.Kind != StopSyscall {
		return 0, fmt.Errorf("%v between the entry and the exit of the call", stop)
	}
	if regs, err = getRegs(th.tid); err != nil {
		return 0, err
	}
	return uintptr(regs.Rax), errors.Join(failed, failpoint.Check(PointExit))
}

// callRegs returns saved changed to run call nr at site. Orig_rax -1
// keeps the kernel from restarting a call the thread stopped in when
// it leaves its stop.
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

// syscallStop resumes th with PTRACE_SYSCALL and waits for its next
// stop.
func (t *Tracer) syscallStop(th *thread) (Stop, error) {
	if err := unix.PtraceSyscall(th.tid, 0); err != nil {
		return Stop{}, fmt.Errorf("resume thread %d to a syscall-stop: %w", th.tid, os.NewSyscallError("ptrace(PTRACE_SYSCALL)", err))
	}
	th.stopped = false
	return t.waitStop(th)
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

// syscallSite returns the injection of a call into th, whose registers
// are regs: where the call runs and, when no syscall instruction is at
// hand, the code at rip that the call must patch.
func (t *Tracer) syscallSite(th *thread, regs *Regs) (Injection, error) {
	inj := Injection{TID: th.tid, Regs: *regs}
	if !t.forcePatch {
		if site, ok := t.knownSite(th); ok {
			inj.Site = site
			return inj, nil
		}
		if regs.Restart() != RestartNone || int64(regs.Orig_rax) >= 0 {
			if site := uintptr(regs.Rip - 2); t.isSyscallInsn(th.tid, site) {
				inj.Site = site
				return inj, nil
			}
		}
	}
	inj.Site = uintptr(regs.Rip)
	inj.Code = make([]byte, len(syscallInsn))
	if err := peek(th.tid, inj.Site, inj.Code); err != nil {
		return Injection{}, fmt.Errorf("save code for a syscall instruction: %w", err)
	}
	return inj, nil
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
