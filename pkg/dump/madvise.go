package dump

import (
	"fmt"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// madviseFlags maps the VmFlags codes of /proc/PID/smaps to the advice
// that sets them.
var madviseFlags = map[string]snapshot.Madvise{
	"rr": snapshot.MadvRandom,
	"sr": snapshot.MadvSequential,
	"dc": snapshot.MadvDontFork,
	"dd": snapshot.MadvDontDump,
	"mg": snapshot.MadvMergeable,
	"hg": snapshot.MadvHugePage,
	"nh": snapshot.MadvNoHugePage,
	"wf": snapshot.MadvWipeOnFork,
}

// recordMadvise records the madvise advice that stays on each VMA of
// pid, from the VmFlags of its smaps entry.
func recordMadvise(pid int, mm *snapshot.MM) error {
	areas, err := procfs.ReadSmaps(procRoot, pid)
	if err != nil {
		return fmt.Errorf("read smaps of process %d: %w", pid, err)
	}
	// A saved VMA may be a piece of an area, where the dump's scratch
	// page was cut out, so match by address rather than by start.
	for i := range mm.VMAs {
		v := &mm.VMAs[i]
		for _, a := range areas {
			if a.Start <= v.Start && v.Start < a.End {
				v.Madvise = adviceOf(a.VmFlags)
				break
			}
		}
	}
	return nil
}

func adviceOf(flags []string) snapshot.Madvise {
	var m snapshot.Madvise
	for _, flag := range flags {
		m |= madviseFlags[flag]
	}
	return m
}
