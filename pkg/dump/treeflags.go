package dump

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// recordTreeFlags reads the parent-death signal and the child-subreaper
// flag of process pid, which prctl writes to memory, so it needs the
// scratch page s.
func recordTreeFlags(t *ptrace.Tracer, s *scratch, pid int, id *snapshot.Identity) error {
	calls := []struct {
		what   string
		option uintptr
	}{
		{"parent-death signal", unix.PR_GET_PDEATHSIG},
		{"child subreaper flag", unix.PR_GET_CHILD_SUBREAPER},
	}
	var values [2]int32
	for i, c := range calls {
		if _, err := t.Syscall(pid, unix.SYS_PRCTL, c.option, s.addr); err != nil {
			return fmt.Errorf("read %s of process %d: %w", c.what, pid, err)
		}
		b, err := s.read(4)
		if err != nil {
			return err
		}
		values[i] = int32(binary.LittleEndian.Uint32(b))
	}
	id.ParentDeathSignal, id.ChildSubreaper = values[0], values[1] != 0
	return nil
}
