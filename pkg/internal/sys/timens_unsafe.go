//go:build linux && amd64

package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ForkExecInTimeNamespace unshares a time namespace, writes offsets (in
// the format of /proc/PID/timens_offsets) to offsetsPath, the calling
// process's timens_offsets file, then forks a child that execs path with
// argv and env, and waits for it. The child lives in the namespace with
// everything it forks; the caller stays outside. It returns the child's
// wait status.
//
// Only raw system calls run from the unshare on: once the namespace for
// children differs from the process's own, the kernel rejects a clone
// with CLONE_VM, so neither the Go runtime (which would abort when it
// needs a thread) nor os/exec (which forks with CLONE_VM) may run. The
// caller must therefore only report the result and exit afterwards.
//
// Limitation: the fork does not block signals the way os/exec does, so a
// signal that reaches the child between fork and exec runs the parent's
// Go handler in the child. Only PID 1 signals the restorer, and it does
// not during that window.
//
// Preconditions: the calling goroutine is locked to the main thread.
func ForkExecInTimeNamespace(offsetsPath string, offsets []byte, path string, argv, env []string) (unix.WaitStatus, error) {
	if len(offsets) == 0 {
		return 0, os.NewSyscallError("write timens_offsets", unix.EINVAL)
	}
	pOffsets, err := unix.BytePtrFromString(offsetsPath)
	if err != nil {
		return 0, err
	}
	pPath, err := unix.BytePtrFromString(path)
	if err != nil {
		return 0, err
	}
	pArgv, err := cStrings(argv)
	if err != nil {
		return 0, err
	}
	pEnv, err := cStrings(env)
	if err != nil {
		return 0, err
	}
	ws, err := rawForkExecInTimeNamespace(pOffsets, offsets, pPath, pArgv, pEnv)
	runtime.KeepAlive(offsets)
	runtime.KeepAlive(pArgv)
	runtime.KeepAlive(pEnv)
	return ws, err
}

// maxWaitRetries bounds the wait4 calls that a signal interrupts.
const maxWaitRetries = 1 << 20

func rawForkExecInTimeNamespace(offsetsPath *byte, offsets []byte, path *byte, argv, env []*byte) (unix.WaitStatus, error) {
	if _, _, errno := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWTIME, 0, 0); errno != 0 {
		return 0, os.NewSyscallError("unshare(CLONE_NEWTIME)", errno)
	}
	atFDCWD := unix.AT_FDCWD
	fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD),
		uintptr(unsafe.Pointer(offsetsPath)), unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return 0, os.NewSyscallError("open timens_offsets", errno)
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&offsets[0])), uintptr(len(offsets)))
	unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	if errno != 0 {
		return 0, os.NewSyscallError("write timens_offsets", errno)
	}
	if int(n) != len(offsets) {
		return 0, os.NewSyscallError("write timens_offsets", unix.EIO)
	}
	pid, _, errno := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, os.NewSyscallError("fork", errno)
	}
	if pid == 0 {
		unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&env[0])))
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
	var ws unix.WaitStatus
	for range maxWaitRetries {
		_, _, errno = unix.RawSyscall6(unix.SYS_WAIT4, pid, uintptr(unsafe.Pointer(&ws)), 0, 0, 0, 0)
		if errno != unix.EINTR {
			break
		}
	}
	if errno != 0 {
		return ws, os.NewSyscallError("wait4", errno)
	}
	return ws, nil
}

// cStrings returns a NULL-terminated array of C strings.
func cStrings(ss []string) ([]*byte, error) {
	out := make([]*byte, len(ss)+1)
	for i, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}
