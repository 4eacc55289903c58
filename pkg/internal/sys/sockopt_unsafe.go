//go:build linux && amd64

package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GetsockoptBytes reads socket option opt at level of fd into buf and
// returns how many bytes the kernel wrote. It serves the options that
// return a struct golang.org/x/sys/unix has no getter for, such as
// TCP_REPAIR_WINDOW, or leaves out fields of, such as the window scale
// bit fields of TCP_INFO.
func GetsockoptBytes(fd, level, opt int, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, os.NewSyscallError("getsockopt", unix.EINVAL)
	}
	size := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	runtime.KeepAlive(buf)
	if errno != 0 {
		return 0, os.NewSyscallError("getsockopt", errno)
	}
	return int(size), nil
}

// SetsockoptBytes sets socket option opt at level of fd to the struct in
// buf.
func SetsockoptBytes(fd, level, opt int, buf []byte) error {
	if len(buf) == 0 {
		return os.NewSyscallError("setsockopt", unix.EINVAL)
	}
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	runtime.KeepAlive(buf)
	if errno != 0 {
		return os.NewSyscallError("setsockopt", errno)
	}
	return nil
}
