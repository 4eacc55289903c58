// Package sys is the only place in ksu that imports unsafe or issues raw
// system calls. It wraps the Linux requests that golang.org/x/sys/unix
// does not provide: PTRACE_SEIZE with options, the register sets beyond
// the general registers (NT_X86_XSTATE), the signal mask, pending
// siginfo, rseq and system call information requests, and
// process_vm_readv/process_vm_writev on plain byte slices.
//
// Each wrapper returns the errno as an *os.SyscallError naming the
// request, so callers only add the thread or process id and the address.
// Wrappers take plain Go values and keep every buffer they pass to the
// kernel alive until the call returns.
//
// Only Linux on x86-64 is supported.
package sys
