package harness

import (
	"fmt"

	"github.com/google/go-cmp/cmp"
)

// Compare returns the differences between a capture before the dump and
// one after the restore, other than those in Allowed: one entry per
// process that is missing, extra or different, with a cmp diff
// (-before +after).
func Compare(before, after Tree) []string {
	b, a := normalize(before), normalize(after)
	var diffs []string
	if b.Root != a.Root {
		diffs = append(diffs, fmt.Sprintf("root pid %d, want %d", a.Root, b.Root))
	}
	afterByPID := map[int]Process{}
	for _, p := range a.Processes {
		afterByPID[p.PID] = p
	}
	for _, want := range b.Processes {
		got, ok := afterByPID[want.PID]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("pid %d (%s) missing after the restore", want.PID, want.Comm))
			continue
		}
		delete(afterByPID, want.PID)
		got = dropNewThreads(want, got)
		got = keepTransientMasks(want, got)
		if d := cmp.Diff(want, got); d != "" {
			diffs = append(diffs, fmt.Sprintf("pid %d (%s) differs (-before +after):\n%s", want.PID, want.Comm, d))
		}
	}
	for _, p := range a.Processes {
		if _, extra := afterByPID[p.PID]; extra {
			diffs = append(diffs, fmt.Sprintf("pid %d (%s) is new after the restore", p.PID, p.Comm))
		}
	}
	return diffs
}

// dropNewThreads removes from after the threads that before did not have,
// with the thread count, because a program may start threads of its own
// once it runs again (the Go runtime does). A thread of before that is
// missing from after still shows as a difference.
func dropNewThreads(before, after Process) Process {
	had := map[int]bool{}
	for _, th := range before.Threads {
		had[th.TID] = true
	}
	var kept []Thread
	for _, th := range after.Threads {
		if had[th.TID] {
			kept = append(kept, th)
		}
	}
	if len(kept) == len(after.Threads) {
		return after
	}
	after.Threads = kept
	after.Status = copyMap(after.Status)
	if n, ok := before.Status["Threads"]; ok {
		after.Status["Threads"] = n
	}
	return after
}

// allBlocked is a blocked set with every signal but SIGKILL and SIGSTOP,
// as /proc/PID/status prints it.
const allBlocked = "fffffffffffbfeff"

// keepTransientMasks copies into after the blocked set of each thread
// that before caught with every signal blocked: glibc blocks them all
// while it creates a thread (a SIGEV_THREAD timer starts one at each
// expiry), so that capture saw a moment, not the thread's own mask.
func keepTransientMasks(before, after Process) Process {
	transient := map[int]bool{}
	for _, th := range before.Threads {
		if th.SigBlk == allBlocked {
			transient[th.TID] = true
		}
	}
	if len(transient) == 0 {
		return after
	}
	after.Threads = append([]Thread(nil), after.Threads...)
	for i, th := range after.Threads {
		if transient[th.TID] {
			after.Threads[i].SigBlk = allBlocked
		}
	}
	return after
}
