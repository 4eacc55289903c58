//go:build linux && amd64

package sys

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ReadProcessMemory copies len(buf) bytes at address addr of process pid
// into buf with process_vm_readv. It returns the number of bytes copied,
// which is less than len(buf) only together with an error. The kernel
// stops at the first page it cannot read, and the error is the one a
// read at that page returns (EFAULT for an unmapped or unreadable page).
func ReadProcessMemory(pid int, addr uintptr, buf []byte) (int, error) {
	return transfer("process_vm_readv", unix.ProcessVMReadv, pid, addr, buf)
}

// WriteProcessMemory copies buf to address addr of process pid with
// process_vm_writev, like ReadProcessMemory in the other direction. The
// kernel honours the mapping's protection: a read-only page fails with
// EFAULT even for a tracer.
func WriteProcessMemory(pid int, addr uintptr, buf []byte) (int, error) {
	return transfer("process_vm_writev", unix.ProcessVMWritev, pid, addr, buf)
}

type vmCall func(pid int, local []unix.Iovec, remote []unix.RemoteIovec, flags uint) (int, error)

// transfer repeats call until buf is done, because both calls return a
// short count, not an error, when they stop partway.
func transfer(name string, call vmCall, pid int, addr uintptr, buf []byte) (int, error) {
	done := 0
	for done < len(buf) {
		local := []unix.Iovec{{Base: &buf[done]}}
		local[0].SetLen(len(buf) - done)
		remote := []unix.RemoteIovec{{Base: addr + uintptr(done), Len: len(buf) - done}}
		n, err := call(pid, local, remote, 0)
		runtime.KeepAlive(buf)
		if err != nil {
			return done, os.NewSyscallError(name, err)
		}
		if n == 0 {
			return done, os.NewSyscallError(name, unix.EFAULT)
		}
		done += n
	}
	return done, nil
}
