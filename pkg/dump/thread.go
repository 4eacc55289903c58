package dump

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// stackTSize is sizeof(stack_t) on x86-64: ss_sp, ss_flags and padding,
// ss_size.
const stackTSize = 24

// sigactionSize is sizeof(struct sigaction) as rt_sigaction takes it on
// x86-64: handler, flags, restorer, mask.
const sigactionSize = 32

// recordThread reads the state of stopped thread tid.
func recordThread(t *ptrace.Tracer, s *scratch, tid int) (snapshot.Thread, error) {
	th := snapshot.Thread{TID: int32(tid)}
	regs, err := t.GetRegs(tid)
	if err != nil {
		return th, err
	}
	th.Regs = toSnapshotRegs(regs)
	th.Syscall = snapshot.Syscall{Nr: int64(regs.Orig_rax), Result: int64(regs.Rax), Restart: restartMode(regs.Restart())}
	if th.XSave, err = t.GetXState(tid); err != nil {
		return th, err
	}
	if th.SigMask, err = t.GetSigmask(tid); err != nil {
		return th, err
	}
	rseq, err := t.GetRseqConfiguration(tid)
	if err != nil {
		return th, err
	}
	th.Rseq = snapshot.Rseq{Addr: rseq.AbiPointer, Len: rseq.AbiSize, Sig: rseq.Signature}
	head, size, err := sys.GetRobustList(tid)
	if err != nil {
		return th, fmt.Errorf("read robust list of thread %d: %w", tid, err)
	}
	th.RobustList = snapshot.RobustList{Head: head, Len: size}
	comm, err := os.ReadFile(fmt.Sprintf("%s/%d/task/%d/comm", procRoot, tid, tid))
	if err != nil {
		return th, fmt.Errorf("read comm of thread %d: %w", tid, err)
	}
	th.Comm = strings.TrimSuffix(string(comm), "\n")
	if err := recordInjectedThread(t, s, tid, &th); err != nil {
		return th, err
	}
	return th, nil
}

// recordInjectedThread reads the clear_child_tid address and the
// alternate signal stack, which only the thread itself can read.
func recordInjectedThread(t *ptrace.Tracer, s *scratch, tid int, th *snapshot.Thread) error {
	if _, err := t.Syscall(tid, unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, s.addr); err != nil {
		return fmt.Errorf("read clear_child_tid of thread %d: %w", tid, err)
	}
	b, err := s.read(8)
	if err != nil {
		return err
	}
	th.ClearChildTID = le64(b)
	if _, err := t.Syscall(tid, unix.SYS_SIGALTSTACK, 0, s.addr); err != nil {
		return fmt.Errorf("read sigaltstack of thread %d: %w", tid, err)
	}
	if b, err = s.read(stackTSize); err != nil {
		return err
	}
	th.SigAltStack = snapshot.SigAltStack{
		SP:    le64(b[0:]),
		Flags: int32(binary.LittleEndian.Uint32(b[8:])),
		Size:  le64(b[16:]),
	}
	return nil
}

// recordSigactions reads every handler that is not SIG_DFL with
// injected rt_sigaction calls.
func recordSigactions(t *ptrace.Tracer, s *scratch, pid int) ([]snapshot.Sigaction, error) {
	var out []snapshot.Sigaction
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if _, err := t.Syscall(pid, unix.SYS_RT_SIGACTION, uintptr(sig), 0, s.addr, 8); err != nil {
			return nil, fmt.Errorf("read handler of signal %d in process %d: %w", sig, pid, err)
		}
		b, err := s.read(sigactionSize)
		if err != nil {
			return nil, err
		}
		act := snapshot.Sigaction{Signal: int32(sig), Handler: le64(b), Flags: le64(b[8:]),
			Restorer: le64(b[16:]), Mask: le64(b[24:])}
		if act.Handler != 0 || act.Flags != 0 || act.Mask != 0 {
			out = append(out, act)
		}
	}
	return out, nil
}

func restartMode(r ptrace.Restart) snapshot.RestartMode {
	switch r {
	case ptrace.RestartSys, ptrace.RestartNoIntr, ptrace.RestartNoHand:
		return snapshot.RestartSyscall
	case ptrace.RestartBlock:
		return snapshot.RestartBlock
	}
	return snapshot.RestartNone
}

func toSnapshotRegs(r ptrace.Regs) snapshot.Regs {
	return snapshot.Regs{
		R15: r.R15, R14: r.R14, R13: r.R13, R12: r.R12, Rbp: r.Rbp, Rbx: r.Rbx,
		R11: r.R11, R10: r.R10, R9: r.R9, R8: r.R8, Rax: r.Rax, Rcx: r.Rcx, Rdx: r.Rdx,
		Rsi: r.Rsi, Rdi: r.Rdi, OrigRax: r.Orig_rax, Rip: r.Rip, Cs: r.Cs, Eflags: r.Eflags,
		Rsp: r.Rsp, Ss: r.Ss, FsBase: r.Fs_base, GsBase: r.Gs_base,
		Ds: r.Ds, Es: r.Es, Fs: r.Fs, Gs: r.Gs,
	}
}
