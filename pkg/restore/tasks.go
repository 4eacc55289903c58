package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// cloneArgsSize is sizeof(struct clone_args) up to and including cgroup
// (CLONE_ARGS_SIZE_VER2).
const cloneArgsSize = 88

// threadFlags are the clone flags of a thread as pthread_create passes
// them.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM

// scratch returns the address of the stub's scratch memory.
func (rs *restorer) scratch() uint64 { return rs.base + uint64(os.Getpagesize()) }

// poke writes b into the scratch memory of pid at offset off.
func (rs *restorer) poke(pid int, off uint64, b []byte) error {
	if off+uint64(len(b)) > scratchSize {
		return fmt.Errorf("write %d bytes to the stub's scratch memory at offset %d: too large", len(b), off)
	}
	mem, err := rs.mem(int32(pid))
	if err != nil {
		return err
	}
	if _, err := mem.WriteAt(b, int64(rs.scratch()+off)); err != nil {
		return fmt.Errorf("write stub scratch memory of process %d: %w", pid, err)
	}
	return nil
}

// mem returns /proc/PID/mem of pid, opened for writing. Writes through it
// reach read-only and PROT_NONE pages, as a debugger's do.
func (rs *restorer) mem(pid int32) (*os.File, error) {
	if f, ok := rs.mems[pid]; ok {
		return f, nil
	}
	f, err := os.OpenFile(fmt.Sprintf("%s/%d/mem", procRoot, pid), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	rs.mems[pid] = f
	return f, nil
}

// startStub starts the first stub as the restorer's child and seizes it.
// Roots of the snapshot are cloned from it with CLONE_PARENT, so they
// become the restorer's children.
func (rs *restorer) startStub() error {
	memfd, err := stubMemfd(rs.base)
	if err != nil {
		return err
	}
	defer memfd.Close()
	cmd := &exec.Cmd{Path: "/proc/self/fd/3", Args: []string{"ksu-restore-stub"}, ExtraFiles: []*os.File{memfd}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start restore stub: %w", err)
	}
	rs.stub = cmd
	return rs.hold(cmd.Process.Pid)
}

// stopStub ends the first stub once every root has been cloned from it.
func (rs *restorer) stopStub() error {
	pid := rs.stub.Process.Pid
	if err := rs.t.Detach(pid); err != nil {
		return fmt.Errorf("detach restore stub %d: %w", pid, err)
	}
	rs.stub.Process.Kill()
	rs.stub.Wait() // killed by design: the status carries no news
	rs.stub = nil
	return nil
}

// hold seizes and stops task tid, which runs the stub's pause loop.
func (rs *restorer) hold(tid int) error {
	if err := rs.t.Seize(tid, 0); err != nil {
		return err
	}
	if _, err := rs.t.Interrupt(tid); err != nil {
		return err
	}
	return rs.t.SetSyscallSite(tid, uintptr(rs.base+siteOffset))
}

// createTasks creates every process, parents first, then its threads.
func (rs *restorer) createTasks() error {
	byPID := map[int32]*snapshot.Process{}
	for _, p := range rs.procs {
		byPID[p.PID] = p
	}
	done := map[int32]bool{}
	for range len(rs.procs) {
		for _, p := range rs.procs {
			if done[p.PID] {
				continue
			}
			parent := rs.stub.Process.Pid
			flags := uint64(unix.CLONE_PARENT)
			if _, ok := byPID[p.PPID]; ok {
				if !done[p.PPID] {
					continue
				}
				parent, flags = int(p.PPID), 0
			}
			if err := rs.createProcess(parent, flags, p); err != nil {
				return err
			}
			done[p.PID] = true
		}
	}
	if len(done) != len(rs.procs) {
		return fmt.Errorf("process tree has a cycle: created %d of %d processes", len(done), len(rs.procs))
	}
	return rs.joinGroups()
}

func (rs *restorer) createProcess(parent int, flags uint64, p *snapshot.Process) error {
	exitSignal := uint64(p.ExitSignal)
	if flags&unix.CLONE_PARENT != 0 {
		// clone3 rejects an exit signal with CLONE_PARENT: the task
		// takes the stub's, SIGCHLD.
		exitSignal = 0
	}
	if err := rs.clone(parent, p.PID, flags, exitSignal); err != nil {
		return fmt.Errorf("create process %d: %w", p.PID, err)
	}
	rs.created = append(rs.created, int(p.PID))
	rs.stats.Processes++
	rs.logf("created process %d in parent %d", p.PID, parent)
	if p.SID == p.PID {
		if _, err := rs.t.Syscall(int(p.PID), unix.SYS_SETSID); err != nil {
			return fmt.Errorf("start session %d: %w", p.PID, err)
		}
	} else if p.PGID == p.PID {
		if _, err := rs.t.Syscall(int(p.PID), unix.SYS_SETPGID, 0, 0); err != nil {
			return fmt.Errorf("start process group %d: %w", p.PID, err)
		}
	}
	if p.State == snapshot.StateZombie {
		return nil // buryZombies makes it exit
	}
	main := false
	for _, th := range p.Threads {
		if th.TID == p.PID {
			main = true
			continue
		}
		if err := rs.clone(int(p.PID), th.TID, threadFlags, 0); err != nil {
			return fmt.Errorf("create thread %d of process %d: %w", th.TID, p.PID, err)
		}
		rs.stats.Threads++
	}
	if !main {
		return fmt.Errorf("process %d: snapshot has no thread %d (main thread)", p.PID, p.PID)
	}
	rs.stats.Threads++
	return nil
}

// clone injects clone3 with set_tid into parent's stub so that the new
// task gets id tid, and holds the new task.
func (rs *restorer) clone(parent int, tid int32, flags, exitSignal uint64) error {
	args := make([]byte, cloneArgsSize+8)
	le := binary.LittleEndian
	le.PutUint64(args[0:], flags)
	le.PutUint64(args[32:], exitSignal)
	le.PutUint64(args[64:], rs.scratch()+cloneArgsSize) // set_tid
	le.PutUint64(args[72:], 1)                          // set_tid_size
	le.PutUint32(args[cloneArgsSize:], uint32(tid))
	if err := rs.poke(parent, 0, args); err != nil {
		return err
	}
	got, err := rs.cloneRetry(parent)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("clone3 in process %d: id %d is still in use after %v "+
			"(a process killed by the dump that its parent has not reaped yet?): %w",
			parent, tid, idBusyWait, err)
	}
	if err != nil {
		return fmt.Errorf("clone3 in process %d: %w", parent, err)
	}
	if int32(got) != tid {
		return fmt.Errorf("clone3 in process %d created task %d, want %d", parent, got, tid)
	}
	return rs.hold(int(tid))
}

// idBusyWait bounds how long clone waits for a wanted id to be freed. A
// task killed just before (ksu dump --kill, then ksu restore) keeps its
// id until its parent reaps it, which usually takes milliseconds.
const idBusyWait = 2 * time.Second

// cloneRetry injects the clone3 call prepared in parent's scratch page,
// again while it fails with EEXIST, for at most idBusyWait.
func (rs *restorer) cloneRetry(parent int) (uintptr, error) {
	deadline := time.Now().Add(idBusyWait)
	for {
		got, err := rs.t.Syscall(parent, unix.SYS_CLONE3, uintptr(rs.scratch()), cloneArgsSize)
		if !errors.Is(err, unix.EEXIST) || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// joinGroups moves every process that is not a group leader into its
// saved process group, once all leaders exist.
//
// Limitation: a group or session whose leader is not in the snapshot
// keeps the restorer's group or session; the process's PGID or SID then
// differs from the saved one, which is logged.
func (rs *restorer) joinGroups() error {
	for _, p := range rs.procs {
		if p.PGID == p.PID {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("%s/%d", procRoot, p.PGID)); err != nil {
			rs.logf("process %d: process group %d has no leader, keeping %d", p.PID, p.PGID, unix.Getpgrp())
			continue
		}
		if pg, _ := unix.Getpgid(int(p.PID)); pg == int(p.PGID) {
			continue
		}
		if _, err := rs.t.Syscall(int(p.PID), unix.SYS_SETPGID, 0, uintptr(p.PGID)); err != nil {
			return fmt.Errorf("join process group %d: %w", p.PGID, err)
		}
	}
	return nil
}
