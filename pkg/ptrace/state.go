package ptrace

import (
	"fmt"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"golang.org/x/sys/unix"
)

// RseqConfiguration is the rseq area a thread registered.
type RseqConfiguration = sys.RseqConfiguration

// SyscallInfo is the system call state that PTRACE_GET_SYSCALL_INFO
// reports.
type SyscallInfo = sys.SyscallInfo

// maxXStateSize bounds the buffer GetXState offers the kernel while it
// measures the register set. It is far above the largest x86 XSAVE area
// known, about 11 KiB with AMX tile data.
const maxXStateSize = 1 << 20

// GetXState returns the extended register state (FPU, SSE, AVX and every
// other XSAVE component) of stopped thread tid in the kernel's
// standard-format XSAVE layout: the 512-byte legacy FXSAVE area, the
// 64-byte XSAVE header, then the components.
func (t *Tracer) GetXState(tid int) ([]byte, error) {
	var xstate []byte
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("get xstate: %w", err)
		}
		var err error
		xstate, err = t.getXState(tid)
		return err
	})
	return xstate, err
}

func (t *Tracer) getXState(tid int) ([]byte, error) {
	size := t.xstateSize
	if size == 0 {
		size = 4096
	}
	for size <= maxXStateSize {
		buf := make([]byte, size)
		n, err := sys.PtraceGetRegSet(tid, unix.NT_X86_XSTATE, buf)
		if err != nil {
			return nil, fmt.Errorf("get xstate of thread %d: %w", tid, err)
		}
		// A completely filled buffer may have cut the set short.
		if n < size || t.xstateSize == size {
			t.xstateSize = n
			return buf[:n], nil
		}
		size *= 2
	}
	return nil, fmt.Errorf("get xstate of thread %d: register set larger than %d bytes", tid, maxXStateSize)
}

// SetXState sets the extended register state of stopped thread tid. The
// kernel accepts only a buffer of the exact size GetXState returns.
func (t *Tracer) SetXState(tid int, xstate []byte) error {
	return t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("set xstate: %w", err)
		}
		if err := sys.PtraceSetRegSet(tid, unix.NT_X86_XSTATE, xstate); err != nil {
			return fmt.Errorf("set xstate of thread %d (%d bytes): %w", tid, len(xstate), err)
		}
		return nil
	})
}

// GetSigmask returns the blocked signal mask of stopped thread tid, bit
// n-1 standing for signal n. While the thread waits in a call that
// installs a temporary mask (ppoll, pselect6, epoll_pwait,
// rt_sigsuspend), the kernel returns the thread's own mask, which it
// has set aside to restore when the call returns.
func (t *Tracer) GetSigmask(tid int) (uint64, error) {
	var mask uint64
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("get signal mask: %w", err)
		}
		var err error
		if mask, err = sys.PtraceGetSigmask(tid); err != nil {
			return fmt.Errorf("get signal mask of thread %d: %w", tid, err)
		}
		return nil
	})
	return mask, err
}

// SetSigmask sets the blocked signal mask of stopped thread tid. The
// kernel keeps SIGKILL and SIGSTOP unblocked regardless of mask. In a
// thread waiting with a temporary mask, it replaces the thread's own
// mask and drops the temporary one, which the call installs again when
// it restarts.
func (t *Tracer) SetSigmask(tid int, mask uint64) error {
	return t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("set signal mask: %w", err)
		}
		if err := sys.PtraceSetSigmask(tid, mask); err != nil {
			return fmt.Errorf("set signal mask of thread %d to %#x: %w", tid, mask, err)
		}
		return nil
	})
}

// GetRseqConfiguration returns the rseq area registered by stopped
// thread tid, with AbiPointer 0 when there is none. It needs Linux 5.13
// or later.
func (t *Tracer) GetRseqConfiguration(tid int) (RseqConfiguration, error) {
	var conf RseqConfiguration
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("get rseq configuration: %w", err)
		}
		var err error
		if conf, err = sys.PtraceGetRseqConfiguration(tid); err != nil {
			return fmt.Errorf("get rseq configuration of thread %d: %w", tid, err)
		}
		return nil
	})
	return conf, err
}

// GetSyscallInfo returns the system call state of stopped thread tid.
// The kernel fills it only at syscall-stops and seccomp stops. At other
// stops Op is PTRACE_SYSCALL_INFO_NONE, and Regs.Restart reports whether
// the thread is inside an interrupted call.
func (t *Tracer) GetSyscallInfo(tid int) (SyscallInfo, error) {
	var info SyscallInfo
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("get syscall info: %w", err)
		}
		var err error
		if info, err = sys.PtraceGetSyscallInfo(tid); err != nil {
			return fmt.Errorf("get syscall info of thread %d: %w", tid, err)
		}
		return nil
	})
	return info, err
}

// maxPendingSignals bounds how many queued signals PendingSignals
// reads. RLIMIT_SIGPENDING is usually far lower.
const maxPendingSignals = 1 << 16

// PendingSignals returns the signals queued for stopped thread tid, in
// delivery order, without dequeuing them. With shared set it returns
// the queue of the whole process instead of the thread's own.
func (t *Tracer) PendingSignals(tid int, shared bool) ([]unix.Siginfo, error) {
	var infos []unix.Siginfo
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("peek pending signals: %w", err)
		}
		var err error
		infos, err = peekSignals(tid, shared)
		return err
	})
	return infos, err
}

func peekSignals(tid int, shared bool) ([]unix.Siginfo, error) {
	var infos []unix.Siginfo
	batch := make([]unix.Siginfo, 32)
	for len(infos) < maxPendingSignals {
		n, err := sys.PtracePeekSiginfo(tid, uint64(len(infos)), shared, batch)
		if err != nil {
			return nil, fmt.Errorf("peek pending signals of thread %d: %w", tid, err)
		}
		infos = append(infos, batch[:n]...)
		if n < len(batch) {
			return infos, nil
		}
	}
	return nil, fmt.Errorf("peek pending signals of thread %d: more than %d queued", tid, maxPendingSignals)
}

// GetSiginfo returns the siginfo of the signal that caused the current
// stop of thread tid.
func (t *Tracer) GetSiginfo(tid int) (unix.Siginfo, error) {
	var info unix.Siginfo
	err := t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("get siginfo: %w", err)
		}
		var err error
		if info, err = sys.PtraceGetSiginfo(tid); err != nil {
			return fmt.Errorf("get siginfo of thread %d: %w", tid, err)
		}
		return nil
	})
	return info, err
}
