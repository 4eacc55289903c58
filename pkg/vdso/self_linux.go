package vdso

import (
	"fmt"
	"os"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// ReadProcess returns the vDSO image mapped in process pid and its
// address. Reading another process needs ptrace access to it.
func ReadProcess(pid int) (data []byte, base uint64, err error) {
	maps, err := procfs.ReadMaps("/proc", pid)
	if err != nil {
		return nil, 0, fmt.Errorf("read vDSO of pid %d: %w", pid, err)
	}
	for _, m := range maps {
		if m.Path != "[vdso]" {
			continue
		}
		data, err := readMem(pid, m.Start, m.End-m.Start)
		if err != nil {
			return nil, 0, fmt.Errorf("read vDSO of pid %d at 0x%x: %w", pid, m.Start, err)
		}
		return data, m.Start, nil
	}
	return nil, 0, fmt.Errorf("read vDSO of pid %d: no [vdso] mapping", pid)
}

// ReadSelf returns the running kernel's vDSO as mapped in this process.
func ReadSelf() ([]byte, uint64, error) {
	return ReadProcess(os.Getpid())
}

func readMem(pid int, addr, size uint64) ([]byte, error) {
	if size > maxImageSize {
		return nil, fmt.Errorf("mapping of %d bytes is larger than a vDSO", size)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, int64(addr)); err != nil {
		return nil, err
	}
	return buf, nil
}
