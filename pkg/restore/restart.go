package restore

import (
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// resumeRegs returns the registers that thread th starts from after the
// restore. A thread stopped inside a system call resumes as after a
// signal without a handler: the call restarts, or returns EINTR when the
// kernel would have returned it.
//
// A call interrupted with -ERESTART_RESTARTBLOCK would continue through
// restart_syscall(2), which reads per-thread kernel state
// (restart_block) that the snapshot cannot carry, so on the new kernel
// it would fail with EINTR although no signal arrived. Such a call runs
// again from its saved arguments instead; see reissue.
func resumeRegs(th snapshot.Thread) ptrace.Regs {
	regs := fromSnapshotRegs(th.Regs)
	if regs.Restart() != ptrace.RestartBlock {
		return regs.Restarted()
	}
	return reissue(regs)
}

// reissue returns the registers that run the interrupted call of regs
// again: rip back on the syscall instruction, rax the call number, and
// the argument registers as the call left them.
//
// A relative nanosleep or clock_nanosleep with a remaining-time buffer
// wrote the time left into that buffer when the dump's interrupt stopped
// it, and the buffer is part of the saved memory. The call then runs
// again with that buffer as its request, so it sleeps only for the rest.
//
// Limitation: other calls restart with their whole original timeout:
// poll, ppoll, futex waits, and a relative sleep without a
// remaining-time buffer. They sleep longer than asked by the time
// already slept, which their contract permits. Saving the timer's
// expiry from the old kernel (which no interface exposes) would lift it.
func reissue(regs ptrace.Regs) ptrace.Regs {
	out := regs
	out.Rax = regs.Orig_rax
	out.Rip -= 2
	out.Orig_rax = ^uint64(0)
	switch regs.Orig_rax {
	case unix.SYS_NANOSLEEP:
		// nanosleep(req, rem)
		if regs.Rsi != 0 {
			out.Rdi = regs.Rsi
		}
	case unix.SYS_CLOCK_NANOSLEEP:
		// clock_nanosleep(clock, flags, req, rem); an absolute sleep
		// returns -ERESTARTNOHAND and never comes here.
		if regs.Rsi&unix.TIMER_ABSTIME == 0 && regs.R10 != 0 {
			out.Rdx = regs.R10
		}
	}
	return out
}
