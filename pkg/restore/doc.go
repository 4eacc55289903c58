// Package restore recreates the processes of a snapshot on the running
// kernel, with the same PIDs and TIDs, memory, registers and files.
//
// It drives a stub instead of forking itself: a tiny static ELF that
// restore generates in memory, whose only code is a loop around the
// pause system call. The stub's syscall instruction is the site for
// every injected call (pkg/ptrace). Each process is created at its PID by
// injecting clone3 with set_tid into its parent's stub, and each thread by
// injecting clone3 with CLONE_THREAD. Then, in each process, injected
// calls unmap the stub's layout, map the saved VMAs, set the mm fields and
// install the file descriptors, while restore writes the page contents
// through /proc/PID/mem. Threads get their registers last, and every task
// resumes at once when the whole tree is ready. The stub page is unmapped
// by the last injected call, so no restored task ever executes it.
//
// Before any task exists, restore recreates the tmpfs directories and
// files that the processes reference from the snapshot's path sections,
// because a new kernel's tmpfs mounts start empty. A process whose path
// cannot be recreated loses its tree. Files that exist already, as on
// the running kernel, are left as they are.
//
// The same code runs from "ksu restore" on the running kernel and, later,
// from ksu-init on a new one. It needs CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE (for set_tid and PR_SET_MM) and CAP_SYS_PTRACE.
package restore
