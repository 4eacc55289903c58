package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// process is one dumped process while the dump runs.
type process struct {
	pid   int
	proc  *snapshot.Process
	files *fileTable
}

// collect checks every process before it records any, so that a
// rejected object anywhere stops the dump before memory is read. exit
// is the processes' fate after the dump: only a dump that kills them may
// accept pending Unix connections to read their data.
func collect(t *ptrace.Tracer, pids []int, exit Exit, h *hold) ([]*process, error) {
	var rejects []error
	for _, pid := range pids {
		for _, r := range check(pid) {
			rejects = append(rejects, r)
		}
	}
	if len(rejects) > 0 {
		return nil, errors.Join(rejects...)
	}
	files := newFileTable()
	var procs []*process
	for _, pid := range pids {
		p, err := record(t, pid, files, h)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	if err := files.checkPipePeers(); err != nil {
		return nil, err
	}
	if err := files.readPipes(); err != nil {
		return nil, err
	}
	if err := files.linkUnix(); err != nil {
		return nil, err
	}
	if err := h.holdLate(); err != nil {
		return nil, err
	}
	if err := files.readSocketQueues(exit); err != nil {
		return nil, err
	}
	return procs, nil
}

// check lists every object of pid that the snapshot cannot hold.
func check(pid int) []*RejectError {
	var out []*RejectError
	st, err := procfs.ReadStatus(procRoot, pid)
	if err != nil {
		return []*RejectError{{PID: pid, Object: "process", Kind: "status", Reason: err.Error()}}
	}
	out = append(out, checkStatus(pid, st)...)
	if root, err := os.Readlink(fmt.Sprintf("%s/%d/root", procRoot, pid)); err != nil || root != "/" {
		// Limitation: a chrooted process is rejected; restoring its root
		// needs an injected chroot after the files are open.
		out = append(out, notYet(pid, "root "+root, "chroot"))
	}
	out = append(out, checkMaps(pid)...)
	out = append(out, checkFDs(pid)...)
	return out
}

// checkStatus rejects zombies (the dump records them apart, see
// zombie.go) and processes that another tracer holds. A process in group
// stop ('T', stopped by SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU) is kept,
// and record marks it stopped.
func checkStatus(pid int, st procfs.Status) []*RejectError {
	var out []*RejectError
	switch st.State {
	case 'Z', 'X':
		out = append(out, notYet(pid, "process", "zombie"))
	}
	if r := checkTracer(pid, st); r != nil {
		out = append(out, r)
	}
	out = append(out, checkIdentity(pid, st)...)
	return out
}

// checkTracer rejects a process that a debugger or another tracer
// (strace, gdb, a second ksu) traces, state 't' while it sits in a
// ptrace stop. ptrace allows one tracer per thread, so the dump cannot
// seize it, and the restore could not give the tracer back. The dump's
// own tracer thread does not count.
func checkTracer(pid int, st procfs.Status) *RejectError {
	if st.TracerPid == 0 {
		return nil
	}
	if _, err := os.Stat(fmt.Sprintf("%s/self/task/%d", procRoot, st.TracerPid)); err == nil {
		return nil
	}
	return &RejectError{PID: pid, Object: "process", Kind: fmt.Sprintf("traced, state %c", st.State),
		Reason: fmt.Sprintf("thread %d of another process traces it with ptrace; detach that debugger or tracer first",
			st.TracerPid)}
}

// record reads everything about stopped process pid, which h holds.
func record(t *ptrace.Tracer, pid int, files *fileTable, h *hold) (*process, error) {
	stat, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return nil, err
	}
	st, err := procfs.ReadStatus(procRoot, pid)
	if err != nil {
		return nil, err
	}
	p := &process{pid: pid, files: files, proc: &snapshot.Process{
		PID: int32(pid), PPID: int32(stat.PPid), PGID: int32(stat.Pgrp), SID: int32(stat.Session),
		State: snapshot.StateRunning, ExitSignal: int32(stat.ExitSignal),
	}}
	if err := recordIdentity(pid, st, p.proc); err != nil {
		return nil, err
	}
	if h.jobStopped[pid] {
		p.proc.State = snapshot.StateStopped
	}
	if err := withScratch(t, pid, func(s *scratch) error { return recordInjected(t, s, p) }); err != nil {
		return nil, err
	}
	p.proc.Pending = h.dropHeldSignals(pid, p.proc.Pending)
	for i := range p.proc.Threads {
		p.proc.Threads[i].Pending = h.dropHeldSignals(pid, p.proc.Threads[i].Pending)
	}
	if p.proc.FDs, err = files.recordFDs(pid); err != nil {
		return nil, err
	}
	if err := files.objects.recordObjectVMAs(pid, p.proc.MM); err != nil {
		return nil, err
	}
	if err := recordMadvise(pid, p.proc.MM); err != nil {
		return nil, err
	}
	return p, nil
}

// groupStopped reports whether process pid was in group stop when the
// dump seized it. /proc shows every seized thread in state 't', so the
// kind of each thread's ptrace stop shows it: a thread that a signal
// stopped reports a group-stop instead of the interrupt-stop.
func groupStopped(t *ptrace.Tracer, pid int) (bool, error) {
	for _, tid := range t.Threads(pid) {
		stop, err := t.Interrupt(tid)
		if err != nil {
			return false, fmt.Errorf("read stop of thread %d: %w", tid, err)
		}
		if stop.Kind == ptrace.StopGroup {
			return true, nil
		}
	}
	return false, nil
}

// recordInjected records the state that needs the scratch page: the
// threads, the signal handlers and the memory map (which needs brk).
func recordInjected(t *ptrace.Tracer, s *scratch, p *process) error {
	for _, tid := range t.Threads(p.pid) {
		th, err := recordThread(t, s, tid)
		if err != nil {
			return err
		}
		p.proc.Threads = append(p.proc.Threads, th)
	}
	var err error
	if p.proc.Sigactions, err = recordSigactions(t, s, p.pid); err != nil {
		return err
	}
	if p.proc.Itimers, err = recordItimers(t, s, p.pid); err != nil {
		return err
	}
	if p.proc.PosixTimers, err = recordPosixTimers(t, s, p.pid); err != nil {
		return err
	}
	if err := recordPending(t, p); err != nil {
		return err
	}
	if err := recordIdentityInjected(t, p); err != nil {
		return err
	}
	p.proc.MM, err = recordMM(t, s, p.pid)
	return err
}

func recordIdentity(pid int, st procfs.Status, proc *snapshot.Process) error {
	comm, err := os.ReadFile(fmt.Sprintf("%s/%d/comm", procRoot, pid))
	if err != nil {
		return fmt.Errorf("read comm of process %d: %w", pid, err)
	}
	cwd, err := os.Readlink(fmt.Sprintf("%s/%d/cwd", procRoot, pid))
	if err != nil {
		return fmt.Errorf("read cwd of process %d: %w", pid, err)
	}
	if strings.HasSuffix(cwd, " (deleted)") {
		return notYet(pid, "cwd "+cwd, "deleted directory")
	}
	id := snapshot.Identity{
		Comm: strings.TrimSuffix(string(comm), "\n"), Cwd: cwd, Root: "/", Umask: st.Umask,
		UID: st.Uid[0], EUID: st.Uid[1], SUID: st.Uid[2], FSUID: st.Uid[3],
		GID: st.Gid[0], EGID: st.Gid[1], SGID: st.Gid[2], FSGID: st.Gid[3],
		Groups:         st.Groups,
		CapInheritable: st.CapInh, CapPermitted: st.CapPrm, CapEffective: st.CapEff,
		CapBounding: st.CapBnd, CapAmbient: st.CapAmb, NoNewPrivs: st.NoNewPrivs,
	}
	// N.B. /proc/PID/limits, not prlimit: prlimit on a process with
	// other uids needs CAP_SYS_RESOURCE, which the dumper may lack.
	limits, err := procfs.ReadLimits(procRoot, pid)
	if err != nil {
		return err
	}
	for _, l := range limits {
		id.Rlimits = append(id.Rlimits, snapshot.Rlimit{Resource: int32(l.Resource), Cur: l.Soft, Max: l.Hard})
	}
	proc.Identity = id
	return nil
}

// scratch is a page mapped into a stopped process for injected calls to
// read from and write to.
type scratch struct {
	tid  int
	addr uintptr
}

func (s *scratch) read(n int) ([]byte, error) {
	buf := make([]byte, n)
	if _, err := ptrace.ReadMemory(s.tid, s.addr, buf); err != nil {
		return nil, fmt.Errorf("read scratch page of thread %d: %w", s.tid, err)
	}
	return buf, nil
}

// withScratch maps a scratch page into process pid with an injected mmap,
// runs fn and unmaps the page again, also when fn fails.
func withScratch(t *ptrace.Tracer, pid int, fn func(*scratch) error) error {
	page := uintptr(os.Getpagesize())
	addr, err := t.Syscall(pid, unix.SYS_MMAP, 0, page, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		return fmt.Errorf("map scratch page into process %d: %w", pid, err)
	}
	ferr := fn(&scratch{tid: pid, addr: addr})
	if _, err := t.Syscall(pid, unix.SYS_MUNMAP, addr, page); err != nil {
		return errors.Join(ferr, fmt.Errorf("unmap scratch page %#x of process %d: %w", addr, pid, err))
	}
	return ferr
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
