//go:build linux && amd64

package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kcmpFile is KCMP_FILE from linux/kcmp.h.
const kcmpFile = 0

// GetRobustList returns the robust futex list head and its length as
// thread tid registered them with set_robust_list(2). Reading another
// thread's list needs the right to ptrace it.
func GetRobustList(tid int) (head, size uint64, err error) {
	_, _, errno := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid),
		uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&size)))
	runtime.KeepAlive(&head)
	runtime.KeepAlive(&size)
	if errno != 0 {
		return 0, 0, os.NewSyscallError("get_robust_list", errno)
	}
	return head, size, nil
}

// SameFile reports whether descriptor fd1 of process pid1 and descriptor
// fd2 of process pid2 refer to the same open file description, with
// kcmp(KCMP_FILE). It needs the right to ptrace both processes.
func SameFile(pid1, pid2, fd1, fd2 int) (bool, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), kcmpFile,
		uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		return false, os.NewSyscallError("kcmp", errno)
	}
	return r == 0, nil
}
