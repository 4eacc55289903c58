package dump

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// recordPending reads the signals queued for process p and for each of
// its threads with PTRACE_PEEKSIGINFO, in queue order, with their full
// siginfo, so the restore can queue them again in the same order.
func recordPending(t *ptrace.Tracer, p *process) error {
	shared, err := t.PendingSignals(p.pid, true)
	if err != nil {
		return fmt.Errorf("read pending signals of process %d: %w", p.pid, err)
	}
	p.proc.Pending = toSiginfos(shared)
	for i := range p.proc.Threads {
		th := &p.proc.Threads[i]
		infos, err := t.PendingSignals(int(th.TID), false)
		if err != nil {
			return fmt.Errorf("read pending signals of thread %d: %w", th.TID, err)
		}
		th.Pending = toSiginfos(infos)
	}
	return nil
}

func toSiginfos(infos []unix.Siginfo) []snapshot.Siginfo {
	var out []snapshot.Siginfo
	for i := range infos {
		out = append(out, snapshot.Siginfo{Signal: infos[i].Signo, Info: sys.SiginfoBytes(&infos[i])})
	}
	return out
}
