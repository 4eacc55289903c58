package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// setTreeFlags sets the child-subreaper flag and the parent-death signal
// of process p. Changing credentials clears the parent-death signal, so
// it runs after them.
func (rs *restorer) setTreeFlags(p *snapshot.Process) error {
	pid, id := int(p.PID), p.Identity
	if id.ChildSubreaper {
		if _, err := rs.t.Syscall(pid, unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1); err != nil {
			return fmt.Errorf("set child subreaper: %w", err)
		}
	}
	if id.ParentDeathSignal != 0 {
		if _, err := rs.t.Syscall(pid, unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(id.ParentDeathSignal)); err != nil {
			return fmt.Errorf("set parent-death signal %d: %w", id.ParentDeathSignal, err)
		}
	}
	return nil
}
