//go:build linux && amd64

package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExecInTimeNamespace unshares a time namespace, writes offsets (in the
// format of /proc/PID/timens_offsets) to offsetsPath, which must be the
// calling process's timens_offsets file, and execs path with argv and
// env. The exec moves the process into the namespace (Linux 6.0 and
// later), with the offsets set before anything entered it.
//
// Only raw system calls run between the unshare and the exec: once the
// namespace for children differs from the process's own, the kernel
// rejects the clone that creates a thread, and the Go runtime aborts
// when it needs a new one. It returns only on failure; after a failed
// write or exec the process can still run, but must not start threads,
// so the caller should report and exit.
//
// Preconditions: the calling goroutine is locked to the main thread.
func ExecInTimeNamespace(offsetsPath string, offsets []byte, path string, argv, env []string) error {
	pOffsets, err := unix.BytePtrFromString(offsetsPath)
	if err != nil {
		return err
	}
	pPath, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	pArgv, err := cStrings(argv)
	if err != nil {
		return err
	}
	pEnv, err := cStrings(env)
	if err != nil {
		return err
	}
	if len(offsets) == 0 {
		return os.NewSyscallError("write timens_offsets", unix.EINVAL)
	}
	err = rawExecInTimeNamespace(pOffsets, offsets, pPath, pArgv, pEnv)
	runtime.KeepAlive(offsets)
	runtime.KeepAlive(pArgv)
	runtime.KeepAlive(pEnv)
	return err
}

func rawExecInTimeNamespace(offsetsPath *byte, offsets []byte, path *byte, argv, env []*byte) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWTIME, 0, 0); errno != 0 {
		return os.NewSyscallError("unshare(CLONE_NEWTIME)", errno)
	}
	atFDCWD := unix.AT_FDCWD
	fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD),
		uintptr(unsafe.Pointer(offsetsPath)), unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return os.NewSyscallError("open timens_offsets", errno)
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&offsets[0])), uintptr(len(offsets)))
	unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	if errno != 0 {
		return os.NewSyscallError("write timens_offsets", errno)
	}
	if int(n) != len(offsets) {
		return os.NewSyscallError("write timens_offsets", unix.EIO)
	}
	_, _, errno = unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&env[0])))
	return os.NewSyscallError("execve", errno)
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
