package dump

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// isZombie reports whether pid has exited and waits for its parent to
// reap it. A zombie has no threads to seize, no memory and no
// namespaces, so the dump records only its place in the tree and its
// exit status.
func isZombie(pid int) (bool, error) {
	st, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return false, err
	}
	return st.State == 'Z', nil
}

// splitZombies separates the zombies of pids from the live processes,
// keeping the order of each. A zombie that is a root is rejected: its
// own parent, outside the snapshot, is the one that would reap it.
func splitZombies(pids, roots []int) (live, zombies []int, err error) {
	for _, pid := range pids {
		z, err := isZombie(pid)
		if errors.Is(err, os.ErrNotExist) {
			// Its parent was held only after it had reaped it.
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if !z {
			live = append(live, pid)
			continue
		}
		if slices.Contains(roots, pid) {
			return nil, nil, &RejectError{PID: pid, Object: "process", Kind: "zombie",
				Reason: "a zombie cannot be the root of a dump; dump its parent instead"}
		}
		zombies = append(zombies, pid)
	}
	return live, zombies, nil
}

// recordZombie records zombie pid. Its parent is frozen, so it cannot be
// reaped while the dump runs.
func recordZombie(pid int) (*process, error) {
	stat, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return nil, fmt.Errorf("read zombie %d: %w", pid, err)
	}
	st, err := procfs.ReadStatus(procRoot, pid)
	if err != nil {
		return nil, fmt.Errorf("read zombie %d: %w", pid, err)
	}
	// The main thread keeps the name and signal mask that /proc shows.
	main := snapshot.Thread{TID: int32(pid), Comm: stat.Comm, SigMask: st.SigBlk}
	return &process{pid: pid, proc: &snapshot.Process{
		PID: int32(pid), PPID: int32(stat.PPid), PGID: int32(stat.Pgrp), SID: int32(stat.Session),
		State: snapshot.StateZombie, ExitStatus: int32(stat.ExitCode), ExitSignal: int32(stat.ExitSignal),
		Identity: snapshot.Identity{Comm: stat.Comm}, Threads: []snapshot.Thread{main},
	}}, nil
}
