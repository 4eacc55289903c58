package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// zombieTimeout bounds the wait for one recreated zombie to exit.
const zombieTimeout = 5 * time.Second

// buryZombies makes every zombie of the snapshot exit again with its
// saved wait status, before any process resumes, so that its parent
// reaps the same status with waitpid. It then drops the zombies from
// rs.procs, because the later steps build live processes only.
//
// A status of a normal exit comes from exit_group run at the stub's
// syscall instruction. A status of a death by signal comes from that
// signal, which kills the stub because the stub installs no handler.
// The stub is made non-dumpable first, so a core-dumping signal writes
// no core file.
//
// Limitation: the core-dump bit (0x80) of a status is lost, because
// setting it needs a real core dump. The parent then gets WCOREDUMP
// false where it was true.
func (rs *restorer) buryZombies() error {
	var live []*snapshot.Process
	for _, p := range rs.procs {
		if p.State != snapshot.StateZombie {
			live = append(live, p)
			continue
		}
		if err := rs.bury(p); err != nil {
			return fmt.Errorf("recreate zombie %d: %w", p.PID, err)
		}
	}
	rs.procs = live
	return nil
}

func (rs *restorer) bury(p *snapshot.Process) error {
	pid := int(p.PID)
	if err := rs.setZombieLook(p); err != nil {
		return err
	}
	sig := unix.Signal(p.ExitStatus & 0x7f)
	if sig == 0 {
		regs, err := rs.t.GetRegs(pid)
		if err != nil {
			return err
		}
		regs.Rip = rs.base + siteOffset
		regs.Rax = unix.SYS_EXIT_GROUP
		regs.Rdi = uint64(p.ExitStatus>>8) & 0xff
		regs.Orig_rax = ^uint64(0)
		if err := rs.t.SetRegs(pid, regs); err != nil {
			return err
		}
	} else if _, err := rs.t.Syscall(pid, unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0); err != nil {
		return fmt.Errorf("clear dumpable: %w", err)
	}
	if err := rs.t.Detach(pid); err != nil {
		return err
	}
	if sig != 0 {
		// Thread-directed like raise(3): a process-directed fatal signal
		// would stay visible in the zombie's ShdPnd.
		if err := unix.Tgkill(pid, pid, sig); err != nil {
			return fmt.Errorf("kill with %v: %w", sig, err)
		}
	}
	if err := waitZombie(pid); err != nil {
		return err
	}
	rs.logf("recreated zombie %d with status %#x", pid, p.ExitStatus)
	return rs.drainSignal(int(p.PPID), unix.Signal(p.ExitSignal))
}

// setZombieLook gives the stub of zombie p the name and signal mask that
// /proc showed for the zombie.
func (rs *restorer) setZombieLook(p *snapshot.Process) error {
	pid := int(p.PID)
	if err := rs.pokeString(pid, p.Identity.Comm); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(rs.scratch())); err != nil {
		return fmt.Errorf("set name %q: %w", p.Identity.Comm, err)
	}
	for _, th := range p.Threads {
		if th.TID == p.PID {
			return rs.t.SetSigmask(pid, th.SigMask)
		}
	}
	return nil
}

// waitZombie polls /proc until pid is a zombie.
func waitZombie(pid int) error {
	deadline := time.Now().Add(zombieTimeout)
	for {
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil {
			return fmt.Errorf("wait for process %d to exit: %w", pid, err)
		}
		if st.State == 'Z' {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for process %d to exit: still in state %c after %v", pid, st.State, zombieTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// drainSignal removes every pending sig from held process parent with
// injected rt_sigtimedwait calls of zero timeout. The child's exit sent
// it now, but the parent had already received it before the dump, and
// a traced process keeps even a signal it ignores pending.
func (rs *restorer) drainSignal(parent int, sig unix.Signal) error {
	if sig == 0 {
		return nil
	}
	// A sigset_t of 8 bytes, then a zero struct timespec.
	args := make([]byte, 24)
	binary.LittleEndian.PutUint64(args, 1<<(sig-1))
	if err := rs.poke(parent, 0, args); err != nil {
		return err
	}
	set, timeout := uintptr(rs.scratch()), uintptr(rs.scratch()+8)
	for range 64 {
		_, err := rs.t.Syscall(parent, unix.SYS_RT_SIGTIMEDWAIT, set, 0, timeout, 8)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("take signal %v in parent %d: %w", sig, parent, err)
		}
	}
	return fmt.Errorf("take signal %v in parent %d: still pending after 64 calls", sig, parent)
}
