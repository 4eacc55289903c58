package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"

	"github.com/ksu-project/ksu/pkg/klog"
	"golang.org/x/sys/unix"
)

// maxReapsPerSignal bounds one pass of the reaper; another SIGCHLD or the
// next pass picks up the rest.
const maxReapsPerSignal = 4096

// supervisor reaps the children of PID 1. Every process that PID 1 starts
// must go through start, never os/exec, because the reaper's wait would
// otherwise steal its exit status.
//
// The restore will run in a child that ptraces the processes it builds.
// While such a tracing child runs, the supervisor waits only for the
// children it started and never calls wait4(-1). Restored processes may be
// children of PID 1 during the restore, and PID 1 collecting their exits
// would hide them from the tracer. Orphans are reaped once no tracing
// child is left.
type supervisor struct {
	log klog.Logger
	// wait4 is unix.Wait4; tests replace it to check which PIDs are
	// waited for.
	wait4 func(pid int, status *unix.WaitStatus, options int, rusage *unix.Rusage) (int, error)

	sigs chan os.Signal

	mu       sync.Mutex
	children map[int]*child
	tracers  int // children started with traces set that are still running
	orphans  int // orphans reaped so far
}

type child struct {
	done   chan unix.WaitStatus
	traces bool
}

// newSupervisor returns a supervisor that reaps on every SIGCHLD until
// the process execs.
func newSupervisor(log klog.Logger) *supervisor {
	s := &supervisor{log: log, wait4: unix.Wait4, children: make(map[int]*child)}
	s.sigs = make(chan os.Signal, 1)
	signal.Notify(s.sigs, unix.SIGCHLD)
	go s.loop(s.sigs)
	return s
}

// stop ends the reaping. Tests call it so that the reaper does not take
// the exit status of processes that os/exec waits for.
func (s *supervisor) stop() {
	signal.Stop(s.sigs)
	close(s.sigs)
}

func (s *supervisor) loop(sigs <-chan os.Signal) {
	defer func() {
		// A panic here must not take PID 1 down: log it and stop
		// reaping, which only leaves zombies behind.
		if r := recover(); r != nil {
			s.log.Printf("reaper stopped after a panic: %v", r)
		}
	}()
	for range sigs {
		s.reap()
	}
}

// start runs argv[0] as a child of PID 1 with the console as its standard
// files and returns its PID and a channel that receives its wait status.
// traces marks a child that will ptrace other processes, which pauses the
// reaping of orphans until it exits.
func (s *supervisor) start(argv []string, traces bool) (int, <-chan unix.WaitStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Holding mu until the child is registered keeps the reaper from
	// collecting a child that exits at once as an unknown orphan.
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pid := p.Pid
	_ = p.Release() // the reaper, not os.Process, waits for it
	c := &child{done: make(chan unix.WaitStatus, 1), traces: traces}
	s.children[pid] = c
	if traces {
		s.tracers++
	}
	return pid, c.done, nil
}

// reap collects every child that has exited. While a tracing child runs,
// it collects only the children that start returned.
func (s *supervisor) reap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracers > 0 {
		s.reapKnown()
	}
	if s.tracers == 0 {
		s.reapAny()
	}
}

// reapKnown waits, without blocking, for each child that start returned.
//
// Preconditions: s.mu is held.
func (s *supervisor) reapKnown() {
	for pid := range s.children {
		var ws unix.WaitStatus
		got, err := s.wait4(pid, &ws, unix.WNOHANG, nil)
		if err == nil && got == pid {
			s.finish(pid, ws)
		}
	}
}

// reapAny waits, without blocking, for any child until none has exited.
//
// Preconditions: s.mu is held and no tracing child is running.
func (s *supervisor) reapAny() {
	for range maxReapsPerSignal {
		var ws unix.WaitStatus
		pid, err := s.wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return
		}
		s.finish(pid, ws)
	}
}

// finish sends the status of an exited child on the channel that start
// returned for it, or counts the child as a reaped orphan.
//
// Preconditions: s.mu is held.
func (s *supervisor) finish(pid int, ws unix.WaitStatus) {
	c, ok := s.children[pid]
	if !ok {
		s.orphans++
		s.log.Printf("reaped orphan %d: %s", pid, describeWaitStatus(ws))
		return
	}
	delete(s.children, pid)
	if c.traces {
		s.tracers--
	}
	c.done <- ws
}

// describeWaitStatus returns "exit status N" or "killed by SIGNAL".
func describeWaitStatus(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}
