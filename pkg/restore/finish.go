package restore

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// sigaltstack flags from asm/signal.h.
const (
	ssOnStack = 1
	ssDisable = 2
)

// finishProcess sets everything of p but the stub's removal: limits,
// descriptors, directory, umask, handlers and the threads' state.
func (rs *restorer) finishProcess(p *snapshot.Process) error {
	pid := int(p.PID)
	for _, l := range p.Identity.Rlimits {
		lim := unix.Rlimit{Cur: l.Cur, Max: l.Max}
		if err := unix.Prlimit(pid, int(l.Resource), &lim, nil); err != nil {
			return fmt.Errorf("set rlimit %d: %w", l.Resource, err)
		}
	}
	if err := rs.installFDs(pid, p.FDs); err != nil {
		return err
	}
	if err := rs.pokeString(pid, p.Identity.Cwd); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_CHDIR, uintptr(rs.scratch())); err != nil {
		return fmt.Errorf("change directory to %s: %w", p.Identity.Cwd, err)
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_UMASK, uintptr(p.Identity.Umask)); err != nil {
		return fmt.Errorf("set umask %#o: %w", p.Identity.Umask, err)
	}
	for _, a := range p.Sigactions {
		if err := rs.setSigaction(pid, a); err != nil {
			return err
		}
	}
	for _, th := range p.Threads {
		if err := rs.finishThread(pid, th); err != nil {
			return fmt.Errorf("restore thread %d: %w", th.TID, err)
		}
	}
	return nil
}

func (rs *restorer) pokeString(pid int, s string) error {
	return rs.poke(pid, 0, append([]byte(s), 0))
}

func (rs *restorer) setSigaction(pid int, a snapshot.Sigaction) error {
	b := make([]byte, 32)
	le := binary.LittleEndian
	le.PutUint64(b[0:], a.Handler)
	le.PutUint64(b[8:], a.Flags)
	le.PutUint64(b[16:], a.Restorer)
	le.PutUint64(b[24:], a.Mask)
	if err := rs.poke(pid, 0, b); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_RT_SIGACTION, uintptr(a.Signal), uintptr(rs.scratch()), 0, 8); err != nil {
		return fmt.Errorf("set handler of signal %d: %w", a.Signal, err)
	}
	return nil
}

// finishThread sets one thread's kernel-side registrations, then its
// signal mask and registers, which no later injected call changes.
func (rs *restorer) finishThread(pid int, th snapshot.Thread) error {
	tid := int(th.TID)
	if err := rs.pokeString(pid, th.Comm); err != nil {
		return err
	}
	calls := []struct {
		what string
		skip bool
		nr   uintptr
		args []uintptr
	}{
		{"set name", false, unix.SYS_PRCTL, []uintptr{unix.PR_SET_NAME, uintptr(rs.scratch())}},
		{"set robust list", th.RobustList.Head == 0, unix.SYS_SET_ROBUST_LIST, []uintptr{uintptr(th.RobustList.Head), uintptr(th.RobustList.Len)}},
		{"set clear_child_tid", th.ClearChildTID == 0, unix.SYS_SET_TID_ADDRESS, []uintptr{uintptr(th.ClearChildTID)}},
		{"register rseq", th.Rseq.Addr == 0, unix.SYS_RSEQ, []uintptr{uintptr(th.Rseq.Addr), uintptr(th.Rseq.Len), 0, uintptr(th.Rseq.Sig)}},
	}
	for _, c := range calls {
		if c.skip {
			continue
		}
		if _, err := rs.t.Syscall(tid, c.nr, c.args...); err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
	}
	if err := rs.setAltStack(pid, tid, th.SigAltStack); err != nil {
		return err
	}
	if err := rs.t.SetSigmask(tid, th.SigMask); err != nil {
		return err
	}
	if err := rs.t.SetXState(tid, th.XSave); err != nil {
		return err
	}
	return rs.t.SetRegs(tid, resumeRegs(th))
}

func (rs *restorer) setAltStack(pid, tid int, ss snapshot.SigAltStack) error {
	if ss.Flags&ssDisable != 0 {
		return nil
	}
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b[0:], ss.SP)
	binary.LittleEndian.PutUint32(b[8:], uint32(ss.Flags&^ssOnStack))
	binary.LittleEndian.PutUint64(b[16:], ss.Size)
	if err := rs.poke(pid, 0, b); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(tid, unix.SYS_SIGALTSTACK, uintptr(rs.scratch()), 0); err != nil {
		return fmt.Errorf("set sigaltstack %#x size %d: %w", ss.SP, ss.Size, err)
	}
	return nil
}

// dropStub unmaps the stub from process p, the last call injected into
// it, and then queues SIGSTOP for a process that the dump found stopped
// (stopAgain). The munmap runs at the stub's syscall instruction and
// returns to its own unmapped page, but the thread stops right after it
// and gets its saved registers back, so rip never executes there.
func (rs *restorer) dropStub(p *snapshot.Process) error {
	pid := int(p.PID)
	if fd, ok := rs.pidfds[pid]; ok {
		if _, err := rs.t.Syscall(pid, unix.SYS_CLOSE, fd); err != nil {
			return fmt.Errorf("close pidfd %d in process %d: %w", fd, pid, err)
		}
	}
	size := uintptr(stubPages * os.Getpagesize())
	if _, err := rs.t.Syscall(pid, unix.SYS_MUNMAP, uintptr(rs.base), size); err != nil {
		return fmt.Errorf("unmap stub from process %d: %w", pid, err)
	}
	return stopAgain(p)
}

// stopAgain sends SIGSTOP to p if it was in group stop at the dump, as a
// job that Ctrl-Z suspended. The signal stays pending while the restorer
// holds the threads in their ptrace stops, and the detach that resumes
// every task makes them take it first: the process enters group stop
// before it runs an instruction, and SIGCONT resumes it. No injected
// call may follow, because the pending SIGSTOP would stop it midway.
//
// Limitation: the parent is notified of the stop again. It gets one more SIGCHLD
// (CLD_STOPPED) unless it set SA_NOCLDSTOP, and waitpid(WUNTRACED)
// reports the stop once more even when the parent had collected it
// before the dump, so a shell may print the job as stopped again. The
// stop signal is reported as SIGSTOP even when SIGTSTP, SIGTTIN or
// SIGTTOU stopped the process, because only SIGSTOP stops a process
// whatever its handlers and process group. Recording the stop signal and
// whether the parent had collected it (an injected waitid with WNOWAIT
// in the parent at the dump), then consuming the new report and signal
// in the parent before it resumes, would lift it.
func stopAgain(p *snapshot.Process) error {
	if p.State != snapshot.StateStopped {
		return nil
	}
	if err := unix.Kill(int(p.PID), unix.SIGSTOP); err != nil {
		return fmt.Errorf("stop process %d again: %w", p.PID, err)
	}
	return nil
}

// installFDs closes the stub's descriptors and installs the saved ones
// at their numbers. Each comes from the restorer's open file description
// through pidfd_getfd, so descriptors that shared a description at the
// dump share one again, with its offset and flags.
func (rs *restorer) installFDs(pid int, fds []snapshot.FD) error {
	pidfd := rs.pidfds[pid]
	current, err := procfs.FDs(procRoot, pid)
	if err != nil {
		return err
	}
	for _, fd := range current {
		if uintptr(fd) == pidfd {
			continue
		}
		if _, err := rs.t.Syscall(pid, unix.SYS_CLOSE, uintptr(fd)); err != nil {
			return fmt.Errorf("close stub fd %d: %w", fd, err)
		}
	}
	high := uintptr(0)
	for _, fd := range fds {
		high = max(high, uintptr(fd.Num)+1)
	}
	if high != pidfd {
		if _, err := rs.t.Syscall(pid, unix.SYS_DUP3, pidfd, high, unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("move pidfd to fd %d: %w", high, err)
		}
		if _, err := rs.t.Syscall(pid, unix.SYS_CLOSE, pidfd); err != nil {
			return err
		}
		rs.pidfds[pid] = high
	}
	for _, fd := range fds {
		if err := rs.installFD(pid, fd); err != nil {
			return fmt.Errorf("restore fd %d: %w", fd.Num, err)
		}
	}
	return rs.addEpollTargets(pid, fds)
}

func (rs *restorer) installFD(pid int, fd snapshot.FD) error {
	f, err := rs.openFile(fd.File)
	if err != nil {
		return err
	}
	tmp, err := rs.installTemp(pid, f)
	if err != nil {
		return err
	}
	if tmp == uintptr(fd.Num) {
		flags := uintptr(0)
		if fd.CloseOnExec {
			flags = unix.FD_CLOEXEC
		}
		_, err := rs.t.Syscall(pid, unix.SYS_FCNTL, tmp, unix.F_SETFD, flags)
		return err
	}
	flags := uintptr(0)
	if fd.CloseOnExec {
		flags = unix.O_CLOEXEC
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_DUP3, tmp, uintptr(fd.Num), flags); err != nil {
		return err
	}
	_, err = rs.t.Syscall(pid, unix.SYS_CLOSE, tmp)
	return err
}

func fromSnapshotRegs(r snapshot.Regs) ptrace.Regs {
	return ptrace.Regs{
		R15: r.R15, R14: r.R14, R13: r.R13, R12: r.R12, Rbp: r.Rbp, Rbx: r.Rbx,
		R11: r.R11, R10: r.R10, R9: r.R9, R8: r.R8, Rax: r.Rax, Rcx: r.Rcx, Rdx: r.Rdx,
		Rsi: r.Rsi, Rdi: r.Rdi, Orig_rax: r.OrigRax, Rip: r.Rip, Cs: r.Cs, Eflags: r.Eflags,
		Rsp: r.Rsp, Ss: r.Ss, Fs_base: r.FsBase, Gs_base: r.GsBase,
		Ds: r.Ds, Es: r.Es, Fs: r.Fs, Gs: r.Gs,
	}
}
