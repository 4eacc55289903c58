package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Regs is the general register set of an x86-64 thread, struct
// user_regs_struct. Fs_base and Gs_base hold the FS and GS segment
// bases; Orig_rax holds the number of the system call the thread is in,
// or -1.
type Regs unix.PtraceRegs

// userCS64 is the code segment selector of 64-bit user mode
// (__USER_CS). A thread with any other selector runs 32-bit code.
const userCS64 = 0x33

// Kernel-internal error numbers that a system call interrupted by a
// signal leaves in rax while the kernel decides whether to restart it.
// They never reach user space.
const (
	errRestartSys        = 512
	errRestartNoIntr     = 513
	errRestartNoHand     = 514
	errRestartRestartBlk = 516
)

// GetRegs returns the general registers of stopped thread tid.
func (t *Tracer) GetRegs(tid int) (Regs, error) {
	var regs Regs
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("get registers: %w", err)
		}
		var err error
		regs, err = getRegs(tid)
		return err
	})
	return regs, err
}

// SetRegs sets the general registers of stopped thread tid.
func (t *Tracer) SetRegs(tid int, regs Regs) error {
	return t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("set registers: %w", err)
		}
		return setRegs(tid, regs)
	})
}

func getRegs(tid int) (Regs, error) {
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &regs); err != nil {
		return Regs{}, fmt.Errorf("get registers of thread %d: %w", tid, err)
	}
	return Regs(regs), nil
}

func setRegs(tid int, regs Regs) error {
	r := unix.PtraceRegs(regs)
	if err := unix.PtraceSetRegs(tid, &r); err != nil {
		return fmt.Errorf("set registers of thread %d: %w", tid, err)
	}
	return nil
}

// Restart is the way the kernel continues a system call that a signal
// or a ptrace stop interrupted.
type Restart int

const (
	// RestartNone: the thread is not inside a system call, or the call
	// already has its final result in rax.
	RestartNone Restart = iota
	// RestartSys (-ERESTARTSYS): the call restarts, unless a handler
	// without SA_RESTART runs, in which case it fails with EINTR.
	RestartSys
	// RestartNoIntr (-ERESTARTNOINTR): the call always restarts.
	RestartNoIntr
	// RestartNoHand (-ERESTARTNOHAND): the call restarts, unless any
	// handler runs, in which case it fails with EINTR.
	RestartNoHand
	// RestartBlock (-ERESTART_RESTARTBLOCK): the call continues through
	// restart_syscall(2) with the rest of its timeout, unless any
	// handler runs, in which case it fails with EINTR.
	RestartBlock
)

var restartNames = [...]string{"none", "ERESTARTSYS", "ERESTARTNOINTR", "ERESTARTNOHAND", "ERESTART_RESTARTBLOCK"}

func (r Restart) String() string {
	if int(r) < len(restartNames) {
		return restartNames[r]
	}
	return fmt.Sprintf("Restart(%d)", int(r))
}

// Restart reports whether the thread whose registers these are stopped
// inside an interrupted system call, and how the kernel will continue
// that call when the thread resumes.
func (r *Regs) Restart() Restart {
	if int64(r.Orig_rax) < 0 {
		return RestartNone
	}
	switch -int64(r.Rax) {
	case errRestartSys:
		return RestartSys
	case errRestartNoIntr:
		return RestartNoIntr
	case errRestartNoHand:
		return RestartNoHand
	case errRestartRestartBlk:
		return RestartBlock
	}
	return RestartNone
}

// Restarted returns the registers the kernel gives the thread when it
// resumes it without running a signal handler, as it does after a
// ptrace stop. Rip moves back onto the 2-byte syscall instruction, and
// rax holds the call number again (restart_syscall's for RestartBlock).
// Orig_rax becomes -1, so no later stop applies the restart twice.
// Registers with RestartNone come back unchanged.
//
// A restored thread must start from these registers, because its new
// kernel has no record of the interrupted call and would return the
// internal error to user space.
func (r *Regs) Restarted() Regs {
	out := *r
	switch r.Restart() {
	case RestartNone:
		return out
	case RestartBlock:
		out.Rax = unix.SYS_RESTART_SYSCALL
	default:
		out.Rax = r.Orig_rax
	}
	out.Rip -= 2
	out.Orig_rax = ^uint64(0)
	return out
}

// Limitation: Restarted resumes RestartBlock calls through
// restart_syscall, which continues from per-thread kernel state
// (restart_block) that a checkpoint cannot carry to a new kernel. There
// it fails with EINTR, which nanosleep, clock_nanosleep, poll and
// futex-wait callers must handle anyway. Recording the call's remaining
// timeout and re-issuing the original call would lift it.
