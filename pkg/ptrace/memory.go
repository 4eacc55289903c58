package ptrace

import (
	"fmt"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"golang.org/x/sys/unix"
)

// PeekData reads len(buf) bytes at address addr of stopped thread tid's
// process with PTRACE_PEEKDATA, one word per request. Unlike
// ReadMemory it reads pages the process cannot read itself, but it is
// slow: use it for a few bytes.
func (t *Tracer) PeekData(tid int, addr uintptr, buf []byte) error {
	return t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("peek data: %w", err)
		}
		return peek(tid, addr, buf)
	})
}

// PokeData writes data at address addr of stopped thread tid's process
// with PTRACE_POKEDATA. It writes read-only pages too, such as code: the
// kernel gives the process a private copy of each page it changes.
func (t *Tracer) PokeData(tid int, addr uintptr, data []byte) error {
	return t.do(func() error {
		if _, err := t.stopped(tid); err != nil {
			return fmt.Errorf("poke data: %w", err)
		}
		return poke(tid, addr, data)
	})
}

func peek(tid int, addr uintptr, buf []byte) error {
	n, err := unix.PtracePeekData(tid, addr, buf)
	if err == nil && n < len(buf) {
		err = unix.EIO
	}
	if err != nil {
		return fmt.Errorf("peek %d bytes at %#x in thread %d: %w", len(buf), addr, tid, err)
	}
	return nil
}

func poke(tid int, addr uintptr, data []byte) error {
	n, err := unix.PtracePokeData(tid, addr, data)
	if err == nil && n < len(data) {
		err = unix.EIO
	}
	if err != nil {
		return fmt.Errorf("poke %d bytes at %#x in thread %d: %w", len(data), addr, tid, err)
	}
	return nil
}

// ReadMemory copies len(buf) bytes at address addr of process pid into
// buf with process_vm_readv, the bulk path for memory contents. It needs
// the right to ptrace pid, not an attached tracer, and works from any
// goroutine. It returns the number of bytes copied, less than len(buf)
// only with an error.
func ReadMemory(pid int, addr uintptr, buf []byte) (int, error) {
	n, err := sys.ReadProcessMemory(pid, addr, buf)
	if err != nil {
		return n, fmt.Errorf("read %d bytes at %#x of process %d: %w", len(buf), addr+uintptr(n), pid, err)
	}
	return n, nil
}

// WriteMemory copies buf to address addr of process pid with
// process_vm_writev. It fails with EFAULT on pages the process cannot
// write itself; PokeData writes those.
func WriteMemory(pid int, addr uintptr, buf []byte) (int, error) {
	n, err := sys.WriteProcessMemory(pid, addr, buf)
	if err != nil {
		return n, fmt.Errorf("write %d bytes at %#x of process %d: %w", len(buf), addr+uintptr(n), pid, err)
	}
	return n, nil
}
