package dump

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// schedResetOnFork is the SCHED_RESET_ON_FORK bit of a policy as
// sched_getscheduler(2) reports it.
const schedResetOnFork = 0x40000000

// checkIdentity rejects a seccomp filter, which cannot be read back and
// installed again, and threads whose credentials differ from the main
// thread's, because the snapshot contains one set per process.
func checkIdentity(pid int, st procfs.Status) []*RejectError {
	var out []*RejectError
	if st.Seccomp != 0 {
		// Limitation: seccomp (strict mode or filters) is rejected.
		// Filters could be read with PTRACE_SECCOMP_GET_FILTER and
		// installed again as the last injected call.
		out = append(out, &RejectError{PID: pid, Object: "process", Kind: "seccomp",
			Reason: fmt.Sprintf("seccomp mode %d: only processes without seccomp can be dumped", st.Seccomp)})
	}
	tids, err := procfs.Tasks(procRoot, pid)
	if err != nil {
		return append(out, &RejectError{PID: pid, Object: "threads", Kind: "credentials", Reason: err.Error()})
	}
	for _, tid := range tids {
		ts, err := procfs.ReadStatus(procRoot+"/"+strconv.Itoa(pid)+"/task", tid)
		if err != nil {
			continue // the thread exited
		}
		if !sameCreds(st, ts) {
			// Limitation: per-thread credentials (set with raw setuid
			// calls, not glibc's) are rejected.
			out = append(out, &RejectError{PID: pid, Object: fmt.Sprintf("thread %d", tid), Kind: "credentials",
				Reason: "differ from the main thread's"})
		}
	}
	return out
}

func sameCreds(a, b procfs.Status) bool {
	return a.Uid == b.Uid && a.Gid == b.Gid && slices.Equal(a.Groups, b.Groups) &&
		a.CapInh == b.CapInh && a.CapPrm == b.CapPrm && a.CapEff == b.CapEff &&
		a.CapBnd == b.CapBnd && a.CapAmb == b.CapAmb && a.NoNewPrivs == b.NoNewPrivs
}

// recordIdentityInjected reads the identity fields that /proc does not
// show with injected prctl and personality calls, the scheduling
// attributes of every thread with sched_getattr, the oom_score_adj and
// the cgroup v2 path.
func recordIdentityInjected(t *ptrace.Tracer, p *process) error {
	pid, id := p.pid, &p.proc.Identity
	calls := []struct {
		what string
		nr   uintptr
		args []uintptr
		dst  any
	}{
		{"securebits", unix.SYS_PRCTL, []uintptr{unix.PR_GET_SECUREBITS}, &id.Securebits},
		{"dumpable", unix.SYS_PRCTL, []uintptr{unix.PR_GET_DUMPABLE}, &id.Dumpable},
		{"personality", unix.SYS_PERSONALITY, []uintptr{0xffffffff}, &id.Personality},
	}
	for _, c := range calls {
		v, err := t.Syscall(pid, c.nr, c.args...)
		if err != nil {
			return fmt.Errorf("read %s of process %d: %w", c.what, pid, err)
		}
		switch dst := c.dst.(type) {
		case *uint32:
			*dst = uint32(v)
		case *int32:
			*dst = int32(v)
		}
	}
	for i := range p.proc.Threads {
		if err := recordThreadSched(t, &p.proc.Threads[i]); err != nil {
			return err
		}
	}

	main := p.proc.Threads[0]
	id.SchedPolicy, id.SchedPriority, id.Nice = main.SchedPolicy, main.SchedPriority, main.Nice

	oom, err := os.ReadFile(fmt.Sprintf("%s/%d/oom_score_adj", procRoot, pid))
	if err != nil {
		return fmt.Errorf("read oom_score_adj of process %d: %w", pid, err)
	}
	adj, err := strconv.Atoi(strings.TrimSpace(string(oom)))
	if err != nil {
		return fmt.Errorf("read oom_score_adj of process %d: %w", pid, err)
	}
	id.OOMScoreAdj = int32(adj)

	if id.Cgroup, err = cgroup2Path(pid); err != nil {
		return err
	}
	return withScratch(t, pid, func(s *scratch) error { return recordTreeFlags(t, s, pid, id) })
}

func recordThreadSched(t *ptrace.Tracer, th *snapshot.Thread) error {
	attr, err := unix.SchedGetAttr(int(th.TID), 0)
	if err != nil {
		return fmt.Errorf("read scheduling attributes of thread %d: %w", th.TID, err)
	}
	th.SchedPolicy, th.SchedPriority, th.Nice = int32(attr.Policy), int32(attr.Priority), attr.Nice
	if attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK != 0 {
		th.SchedPolicy |= schedResetOnFork
	}
	slack, err := t.Syscall(int(th.TID), unix.SYS_PRCTL, unix.PR_GET_TIMERSLACK)
	if err != nil {
		return fmt.Errorf("read timer slack of thread %d: %w", th.TID, err)
	}
	th.TimerSlack = uint64(slack)
	return nil
}

// cgroup2Path returns the cgroup v2 path of pid, or "" on a system
// without the v2 hierarchy.
//
// Limitation: memberships in cgroup v1 hierarchies are not recorded, so the
// restored processes join the restorer's v1 cgroups.
func cgroup2Path(pid int) (string, error) {
	groups, err := procfs.ReadCgroup(procRoot, pid)
	if err != nil {
		return "", err
	}
	for _, g := range groups {
		if g.Hierarchy == 0 {
			return g.Path, nil
		}
	}
	return "", nil
}
