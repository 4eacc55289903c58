//go:build linux && amd64

package sys

import (
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLayouts checks the Go mirrors of the kernel structures against the
// sizes in include/uapi/linux/ptrace.h.
func TestLayouts(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    any
		want int
	}{
		{"ptrace_rseq_configuration", RseqConfiguration{}, 24},
		{"ptrace_syscall_info", SyscallInfo{}, 88},
		{"ptrace_peeksiginfo_args", peekSiginfoArgs{}, 16},
	} {
		if got := binary.Size(reflect.ValueOf(tt.v).Interface()); got != tt.want {
			t.Errorf("size of struct %s = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestSyscallInfoAccessors(t *testing.T) {
	info := SyscallInfo{Data: [8]uint64{1, 2, 3, 4, 5, 6, 7, 0xffffffff00000009}}
	nr, args := info.Entry()
	if nr != 1 || args != [6]uint64{2, 3, 4, 5, 6, 7} {
		t.Errorf("Entry() = %d, %v, want 1, [2 3 4 5 6 7]", nr, args)
	}
	if got := info.SeccompData(); got != 9 {
		t.Errorf("SeccompData() = %d, want 9", got)
	}
	exit := SyscallInfo{Data: [8]uint64{^uint64(1), 1}}
	if rval, isError := exit.Exit(); rval != -2 || !isError {
		t.Errorf("Exit() = %d, %v, want -2, true", rval, isError)
	}
}

// TestProcessMemory reads and writes this process's own memory, which
// needs no privilege, and stops at a page it cannot access.
func TestProcessMemory(t *testing.T) {
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	addr := reflect.ValueOf(mem).Pointer()
	pid := os.Getpid()

	msg := []byte("across the page boundary")
	at := addr + uintptr(page) - 10
	if n, err := WriteProcessMemory(pid, at, msg); err != nil || n != len(msg) {
		t.Fatalf("WriteProcessMemory(%#x) = %d, %v, want %d, nil", at, n, err, len(msg))
	}
	got := make([]byte, len(msg))
	if n, err := ReadProcessMemory(pid, at, got); err != nil || string(got) != string(msg) {
		t.Errorf("ReadProcessMemory(%#x) = %d, %q, %v, want %q", at, n, got, err, msg)
	}

	if err := unix.Mprotect(mem[page:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	n, err := ReadProcessMemory(pid, at, got)
	if n != 10 || !errors.Is(err, unix.EFAULT) {
		t.Errorf("ReadProcessMemory across an inaccessible page = %d, %v, want 10, EFAULT", n, err)
	}
	var sysErr *os.SyscallError
	if !errors.As(err, &sysErr) || sysErr.Syscall != "process_vm_readv" {
		t.Errorf("ReadProcessMemory error = %#v, want an *os.SyscallError for process_vm_readv", err)
	}
}

func TestRegSetEmptyBuffer(t *testing.T) {
	if _, err := PtraceGetRegSet(os.Getpid(), unix.NT_X86_XSTATE, nil); !errors.Is(err, unix.EINVAL) {
		t.Errorf("PtraceGetRegSet with no buffer = %v, want EINVAL", err)
	}
	if n, err := PtracePeekSiginfo(os.Getpid(), 0, false, nil); n != 0 || err != nil {
		t.Errorf("PtracePeekSiginfo with no buffer = %d, %v, want 0, nil", n, err)
	}
}
