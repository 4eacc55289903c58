package ptrace

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// syscallNames names the system calls that the dump and the restore
// inject, so that an error names "setpgid" rather than a number.
var syscallNames = map[uintptr]string{
	unix.SYS_ARCH_PRCTL:         "arch_prctl",
	unix.SYS_BIND:               "bind",
	unix.SYS_BRK:                "brk",
	unix.SYS_CAPSET:             "capset",
	unix.SYS_CHDIR:              "chdir",
	unix.SYS_CLOCK_NANOSLEEP:    "clock_nanosleep",
	unix.SYS_CLONE3:             "clone3",
	unix.SYS_CLOSE:              "close",
	unix.SYS_CONNECT:            "connect",
	unix.SYS_DUP3:               "dup3",
	unix.SYS_EPOLL_CTL:          "epoll_ctl",
	unix.SYS_EXIT_GROUP:         "exit_group",
	unix.SYS_FCNTL:              "fcntl",
	unix.SYS_GETITIMER:          "getitimer",
	unix.SYS_GETPID:             "getpid",
	unix.SYS_GETSOCKOPT:         "getsockopt",
	unix.SYS_GETTID:             "gettid",
	unix.SYS_IOCTL:              "ioctl",
	unix.SYS_LISTEN:             "listen",
	unix.SYS_LSEEK:              "lseek",
	unix.SYS_MADVISE:            "madvise",
	unix.SYS_MMAP:               "mmap",
	unix.SYS_MPROTECT:           "mprotect",
	unix.SYS_MREMAP:             "mremap",
	unix.SYS_MUNMAP:             "munmap",
	unix.SYS_NANOSLEEP:          "nanosleep",
	unix.SYS_OPENAT:             "openat",
	unix.SYS_PERSONALITY:        "personality",
	unix.SYS_PIDFD_GETFD:        "pidfd_getfd",
	unix.SYS_PIDFD_OPEN:         "pidfd_open",
	unix.SYS_PRCTL:              "prctl",
	unix.SYS_PRLIMIT64:          "prlimit64",
	unix.SYS_PSELECT6:           "pselect6",
	unix.SYS_READ:               "read",
	unix.SYS_RESTART_SYSCALL:    "restart_syscall",
	unix.SYS_RSEQ:               "rseq",
	unix.SYS_RT_SIGACTION:       "rt_sigaction",
	unix.SYS_RT_SIGPROCMASK:     "rt_sigprocmask",
	unix.SYS_RT_SIGQUEUEINFO:    "rt_sigqueueinfo",
	unix.SYS_RT_SIGTIMEDWAIT:    "rt_sigtimedwait",
	unix.SYS_RT_TGSIGQUEUEINFO:  "rt_tgsigqueueinfo",
	unix.SYS_SCHED_SETSCHEDULER: "sched_setscheduler",
	unix.SYS_SETFSGID:           "setfsgid",
	unix.SYS_SETFSUID:           "setfsuid",
	unix.SYS_SETGROUPS:          "setgroups",
	unix.SYS_SETITIMER:          "setitimer",
	unix.SYS_SETPGID:            "setpgid",
	unix.SYS_SETPRIORITY:        "setpriority",
	unix.SYS_SETRESGID:          "setresgid",
	unix.SYS_SETRESUID:          "setresuid",
	unix.SYS_SETRLIMIT:          "setrlimit",
	unix.SYS_SETSID:             "setsid",
	unix.SYS_SETSOCKOPT:         "setsockopt",
	unix.SYS_SET_ROBUST_LIST:    "set_robust_list",
	unix.SYS_SET_TID_ADDRESS:    "set_tid_address",
	unix.SYS_SIGALTSTACK:        "sigaltstack",
	unix.SYS_SOCKET:             "socket",
	unix.SYS_TIMER_CREATE:       "timer_create",
	unix.SYS_TIMER_DELETE:       "timer_delete",
	unix.SYS_TIMER_GETOVERRUN:   "timer_getoverrun",
	unix.SYS_TIMER_GETTIME:      "timer_gettime",
	unix.SYS_TIMER_SETTIME:      "timer_settime",
	unix.SYS_UMASK:              "umask",
	unix.SYS_WRITE:              "write",
}

// SyscallName returns the name of system call nr, such as "setpgid",
// or "system call N" for one that ksu does not inject.
func SyscallName(nr uintptr) string {
	if name, ok := syscallNames[nr]; ok {
		return name
	}
	return "system call " + strconv.FormatUint(uint64(nr), 10)
}
