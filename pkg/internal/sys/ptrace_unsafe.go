//go:build linux && amd64

package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ptrace issues one ptrace request and returns the kernel's return value.
// Requests that pass a pointer in data must keep its target alive
// themselves.
func ptrace(request, tid int, addr, data uintptr) (uintptr, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_PTRACE, uintptr(request), uintptr(tid), addr, data, 0, 0)
	return r, errno
}

// PtraceSeize attaches to thread tid without stopping it, with the
// PTRACE_O_* flags in options.
func PtraceSeize(tid int, options int) error {
	if _, errno := ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options)); errno != 0 {
		return os.NewSyscallError("ptrace(PTRACE_SEIZE)", errno)
	}
	return nil
}

// PtraceListen lets a seized thread that reports a group-stop stay in
// that stop while the tracer waits for its next event.
func PtraceListen(tid int) error {
	if _, errno := ptrace(unix.PTRACE_LISTEN, tid, 0, 0); errno != 0 {
		return os.NewSyscallError("ptrace(PTRACE_LISTEN)", errno)
	}
	return nil
}

// PtraceCont resumes a stopped thread and delivers signal sig, or none
// when sig is 0.
func PtraceCont(tid int, sig unix.Signal) error {
	if _, errno := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(sig)); errno != 0 {
		return os.NewSyscallError("ptrace(PTRACE_CONT)", errno)
	}
	return nil
}

// PtraceDetach detaches from a stopped thread and delivers signal sig, or
// none when sig is 0.
func PtraceDetach(tid int, sig unix.Signal) error {
	if _, errno := ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)); errno != 0 {
		return os.NewSyscallError("ptrace(PTRACE_DETACH)", errno)
	}
	return nil
}

// PtraceGetRegSet reads register set note (an NT_* value) of thread tid
// into buf and returns how many bytes the kernel filled.
func PtraceGetRegSet(tid int, note int, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, os.NewSyscallError("ptrace(PTRACE_GETREGSET)", unix.EINVAL)
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	_, errno := ptrace(unix.PTRACE_GETREGSET, tid, uintptr(note), uintptr(unsafe.Pointer(&iov)))
	runtime.KeepAlive(buf)
	runtime.KeepAlive(&iov)
	if errno != 0 {
		return 0, os.NewSyscallError("ptrace(PTRACE_GETREGSET)", errno)
	}
	return int(iov.Len), nil
}

// PtraceSetRegSet writes register set note (an NT_* value) of thread tid
// from buf. The kernel rejects some sets unless buf has their exact size.
func PtraceSetRegSet(tid int, note int, buf []byte) error {
	if len(buf) == 0 {
		return os.NewSyscallError("ptrace(PTRACE_SETREGSET)", unix.EINVAL)
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	_, errno := ptrace(unix.PTRACE_SETREGSET, tid, uintptr(note), uintptr(unsafe.Pointer(&iov)))
	runtime.KeepAlive(buf)
	runtime.KeepAlive(&iov)
	if errno != 0 {
		return os.NewSyscallError("ptrace(PTRACE_SETREGSET)", errno)
	}
	return nil
}

// PtraceGetSigmask returns the blocked signal mask of thread tid, bit
// n-1 standing for signal n. For a thread inside ppoll, pselect6 or
// another call with a temporary mask, the kernel returns the mask it
// restores when the call returns.
func PtraceGetSigmask(tid int) (uint64, error) {
	var mask uint64
	_, errno := ptrace(unix.PTRACE_GETSIGMASK, tid, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
	runtime.KeepAlive(&mask)
	if errno != 0 {
		return 0, os.NewSyscallError("ptrace(PTRACE_GETSIGMASK)", errno)
	}
	return mask, nil
}

// PtraceSetSigmask sets the blocked signal mask of thread tid. The kernel
// silently keeps SIGKILL and SIGSTOP unblocked, and drops the temporary
// mask of a call like ppoll or rt_sigsuspend.
func PtraceSetSigmask(tid int, mask uint64) error {
	_, errno := ptrace(unix.PTRACE_SETSIGMASK, tid, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
	runtime.KeepAlive(&mask)
	if errno != 0 {
		return os.NewSyscallError("ptrace(PTRACE_SETSIGMASK)", errno)
	}
	return nil
}

// PtraceGetSiginfo returns the siginfo of the signal that caused the
// current stop of thread tid.
func PtraceGetSiginfo(tid int) (unix.Siginfo, error) {
	var info unix.Siginfo
	_, errno := ptrace(unix.PTRACE_GETSIGINFO, tid, 0, uintptr(unsafe.Pointer(&info)))
	runtime.KeepAlive(&info)
	if errno != 0 {
		return info, os.NewSyscallError("ptrace(PTRACE_GETSIGINFO)", errno)
	}
	return info, nil
}

// PtracePeekSiginfo copies pending signals of thread tid into out,
// starting at queue position off, and returns how many it copied. With
// shared set it reads the process-wide queue, otherwise the thread's own.
func PtracePeekSiginfo(tid int, off uint64, shared bool, out []unix.Siginfo) (int, error) {
	if len(out) == 0 {
		return 0, nil
	}
	args := peekSiginfoArgs{off: off, nr: int32(len(out))}
	if shared {
		args.flags = unix.PTRACE_PEEKSIGINFO_SHARED
	}
	n, errno := ptrace(unix.PTRACE_PEEKSIGINFO, tid, uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&out[0])))
	runtime.KeepAlive(&args)
	runtime.KeepAlive(out)
	if errno != 0 {
		return 0, os.NewSyscallError("ptrace(PTRACE_PEEKSIGINFO)", errno)
	}
	return int(n), nil
}

// PtraceGetRseqConfiguration returns the rseq area that thread tid
// registered.
func PtraceGetRseqConfiguration(tid int) (RseqConfiguration, error) {
	var conf RseqConfiguration
	_, errno := ptrace(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, unsafe.Sizeof(conf), uintptr(unsafe.Pointer(&conf)))
	runtime.KeepAlive(&conf)
	if errno != 0 {
		return conf, os.NewSyscallError("ptrace(PTRACE_GET_RSEQ_CONFIGURATION)", errno)
	}
	return conf, nil
}

// PtraceGetSyscallInfo returns what thread tid is doing with respect to
// system calls at its current stop.
func PtraceGetSyscallInfo(tid int) (SyscallInfo, error) {
	var info SyscallInfo
	_, errno := ptrace(unix.PTRACE_GET_SYSCALL_INFO, tid, unsafe.Sizeof(info), uintptr(unsafe.Pointer(&info)))
	runtime.KeepAlive(&info)
	if errno != 0 {
		return info, os.NewSyscallError("ptrace(PTRACE_GET_SYSCALL_INFO)", errno)
	}
	return info, nil
}
