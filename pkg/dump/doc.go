// Package dump builds a snapshot of live process trees from outside the
// processes. It seizes and interrupts every thread with ptrace, checks
// every object the processes use before it reads any memory, and rejects
// what the restore cannot rebuild with a *RejectError naming the process,
// the object, its kind and the reason. Then it records the process tree,
// threads, memory map and contents, signal state, limits and file
// descriptors into a snapshot stream (pkg/snapshot).
//
// The dump also copies the tmpfs directories and regular files that the
// processes reach through descriptors, mappings, working directories and
// bound socket names (except /run/systemd and /run/udev), and lists
// their paths on disk below /tmp, so that a new kernel can bring them
// back or protect them from the boot-time cleanup.
//
// Some state only the process itself can read, such as signal handlers,
// the clear_child_tid address and the alternate signal stack. Dump reads
// it with system calls injected into a stopped thread. Their results go
// to a scratch page that an injected mmap creates and an injected munmap
// removes.
//
// Until Dump returns, the processes are stopped. On any error they
// resume where they were. Each process that was running also gets one
// SIGCONT, because the freeze sends it a SIGSTOP, so that it stays
// stopped if the dumper dies (see hold). On success they resume, stay
// stopped or are killed, as Options.Exit requests.
package dump
