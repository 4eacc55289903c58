package snapshot

import (
	"fmt"
	"time"
)

// Process is one process of a dumped tree: its place in the tree, its
// threads, memory, file descriptors, signal state, timers and identity.
// Open file descriptions, pipes and shared memory live in their own
// sections because processes share them; a Process refers to them by id.
type Process struct {
	PID        int32
	PPID       int32
	PGID       int32
	SID        int32
	State      ProcessState
	ExitStatus int32 // wait status that the parent will reap, for a zombie
	ExitSignal int32 // signal sent to the parent when the process exits (SIGCHLD unless cloned otherwise)

	Identity    Identity
	MM          *MM // nil for a zombie
	Threads     []Thread
	FDs         []FD
	Sigactions  []Sigaction // handlers that are not SIG_DFL
	Pending     []Siginfo   // signals pending for the whole process (shared pending)
	Itimers     []Itimer    // armed interval timers
	PosixTimers []PosixTimer
}

// ProcessState is the scheduling state of a process as its parent and
// wait(2) see it.
type ProcessState uint8

// Process states. A sleeping process is StateRunning: the snapshot
// records the system call it sleeps in per thread.
const (
	StateRunning ProcessState = iota // running or sleeping
	StateStopped                     // stopped by a job-control signal
	StateZombie                      // exited, not yet reaped
)

// String returns the state's name.
func (s ProcessState) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	case StateZombie:
		return "zombie"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Thread is one thread (task) of a process, as ptrace reads it while the
// thread is stopped.
type Thread struct {
	TID           int32
	Comm          string // thread name (/proc/PID/task/TID/comm)
	Regs          Regs
	XSave         []byte // XSAVE area as PTRACE_GETREGSET NT_X86_XSTATE returns it
	SigMask       uint64 // blocked signals, bit N-1 for signal N
	Rseq          Rseq
	RobustList    RobustList
	SigAltStack   SigAltStack
	ClearChildTID uint64 // address the kernel clears and futex-wakes when the thread exits (set_tid_address)
	Syscall       Syscall
	Pending       []Siginfo // signals pending for this thread only

	// Scheduling attributes, which Linux keeps per thread
	// (sched_getattr(2) on the TID).
	SchedPolicy   int32  // SCHED_OTHER, SCHED_BATCH ..., with SCHED_RESET_ON_FORK (0x40000000) as sched_getscheduler reports it
	SchedPriority int32  // real-time priority
	Nice          int32  // nice value, -20 to 19
	TimerSlack    uint64 // timer slack in nanoseconds (PR_GET_TIMERSLACK)
}

// Regs is the x86-64 general register set, field for field the kernel's
// struct user_regs_struct (PTRACE_GETREGS).
type Regs struct {
	R15, R14, R13, R12 uint64
	Rbp, Rbx           uint64
	R11, R10, R9, R8   uint64
	Rax, Rcx, Rdx      uint64
	Rsi, Rdi           uint64
	OrigRax            uint64
	Rip, Cs, Eflags    uint64
	Rsp, Ss            uint64
	FsBase, GsBase     uint64
	Ds, Es, Fs, Gs     uint64
}

// Rseq is a thread's restartable-sequences registration (rseq(2)).
type Rseq struct {
	Addr uint64 // address of struct rseq, 0 when not registered
	Len  uint32
	Sig  uint32 // signature expected before abort handlers
}

// RobustList is a thread's robust futex list (set_robust_list(2)).
type RobustList struct {
	Head uint64
	Len  uint64
}

// SigAltStack is a thread's alternate signal stack (sigaltstack(2)).
type SigAltStack struct {
	SP    uint64
	Flags int32 // SS_ONSTACK, SS_DISABLE, SS_AUTODISARM
	Size  uint64
}

// Syscall records the system call that a thread was stopped in and what
// the restore must do so that the thread resumes it as the old kernel
// would have.
type Syscall struct {
	Nr      int64 // system call number (orig_rax)
	Result  int64 // value of rax at the stop, such as -ERESTARTSYS
	Restart RestartMode
}

// RestartMode is the way a thread that was stopped in a system call
// continues after the restore.
type RestartMode uint8

// Restart modes, named after what the kernel does on the return path.
const (
	RestartNone        RestartMode = iota // not in a system call, or it completed: resume at rip
	RestartSyscall                        // rewind rip by 2 and set rax to orig_rax, so the call runs again
	RestartBlock                          // the call continues through restart_syscall(2)
	RestartInterrupted                    // the call returns -EINTR
)

// String returns the mode's name.
func (m RestartMode) String() string {
	switch m {
	case RestartNone:
		return "none"
	case RestartSyscall:
		return "syscall"
	case RestartBlock:
		return "block"
	case RestartInterrupted:
		return "interrupted"
	}
	return fmt.Sprintf("restart(%d)", uint8(m))
}

// Sigaction is a signal's disposition (rt_sigaction(2)).
type Sigaction struct {
	Signal   int32
	Handler  uint64 // sa_handler; 1 is SIG_IGN
	Flags    uint64 // SA_* flags
	Restorer uint64 // sa_restorer
	Mask     uint64 // signals blocked while the handler runs
}

// Siginfo is a pending signal with its siginfo_t.
type Siginfo struct {
	Signal int32
	Info   []byte // siginfo_t as PTRACE_PEEKSIGINFO returns it (128 bytes on Linux)
}

// Itimer is an armed interval timer (setitimer(2)).
type Itimer struct {
	Which    int32 // ITIMER_REAL, ITIMER_VIRTUAL or ITIMER_PROF
	Interval time.Duration
	Value    time.Duration // time left until the next expiry
}

// PosixTimer is a POSIX per-process timer (timer_create(2)).
type PosixTimer struct {
	ID         int32 // timer id that timer_create returned
	Clock      int32 // clock id
	Notify     int32 // sigev_notify: SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID
	Signal     int32 // sigev_signo
	SigevValue uint64
	NotifyTID  int32 // thread that receives the signal, for SIGEV_THREAD_ID
	Interval   time.Duration
	Value      time.Duration // time left until the next expiry, 0 when disarmed
	Overrun    int32         // overrun count not yet read (timer_getoverrun)
}

// FD is one entry of a process's file descriptor table.
type FD struct {
	Num         int32
	CloseOnExec bool
	File        uint64 // File.ID of the open file description
}

// Identity is the credentials, limits and other per-process attributes
// that the restore sets before the process runs.
type Identity struct {
	Comm   string // process name (/proc/PID/comm)
	Cwd    string
	Root   string
	Umask  uint32
	Cgroup string // cgroup v2 path

	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Groups                 []uint32 // supplementary groups

	CapInheritable uint64
	CapPermitted   uint64
	CapEffective   uint64
	CapBounding    uint64
	CapAmbient     uint64
	Securebits     uint32
	NoNewPrivs     bool
	Dumpable       int32 // PR_GET_DUMPABLE

	Rlimits       []Rlimit
	Personality   uint32
	SchedPolicy   int32 // SCHED_OTHER, SCHED_FIFO ...
	SchedPriority int32 // real-time priority
	Nice          int32
	OOMScoreAdj   int32

	ParentDeathSignal int32 // signal sent when the parent exits (PR_SET_PDEATHSIG), 0 for none
	ChildSubreaper    bool  // adopts orphaned descendants (PR_SET_CHILD_SUBREAPER)
}

// Rlimit is one resource limit (prlimit(2)); RLIM_INFINITY is
// 0xffffffffffffffff.
type Rlimit struct {
	Resource int32
	Cur      uint64
	Max      uint64
}
