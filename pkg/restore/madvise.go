package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// madviseAdvice lists each Madvise bit with the madvise(2) advice that
// sets it again.
var madviseAdvice = []struct {
	bit    snapshot.Madvise
	advice uintptr
}{
	{snapshot.MadvRandom, unix.MADV_RANDOM},
	{snapshot.MadvSequential, unix.MADV_SEQUENTIAL},
	{snapshot.MadvDontFork, unix.MADV_DONTFORK},
	{snapshot.MadvDontDump, unix.MADV_DONTDUMP},
	{snapshot.MadvMergeable, unix.MADV_MERGEABLE},
	{snapshot.MadvHugePage, unix.MADV_HUGEPAGE},
	{snapshot.MadvNoHugePage, unix.MADV_NOHUGEPAGE},
	{snapshot.MadvWipeOnFork, unix.MADV_WIPEONFORK},
}

// applyMadvise gives each mapped VMA of process pid its saved advice
// with injected madvise calls.
func (rs *restorer) applyMadvise(pid int, vmas []snapshot.VMA) error {
	for _, v := range vmas {
		switch v.Kind {
		case snapshot.VMAVDSO, snapshot.VMAVVAR, snapshot.VMAVVARVClock, snapshot.VMAVSyscall:
			// The kernel sets the flags of its own mappings, and a saved
			// [vvar] range stays unmapped on another kernel release.
			continue
		}
		for _, a := range madviseAdvice {
			if v.Madvise&a.bit == 0 {
				continue
			}
			if _, err := rs.t.Syscall(pid, unix.SYS_MADVISE, uintptr(v.Start), uintptr(v.End-v.Start), a.advice); err != nil {
				return fmt.Errorf("madvise %#x-%#x advice %d: %w", v.Start, v.End, a.advice, err)
			}
		}
	}
	return nil
}
