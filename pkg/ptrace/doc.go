// Package ptrace seizes, stops and resumes the threads of live processes
// and runs system calls inside stopped threads. The dumper uses it to
// read state that only the process itself can read, and the restorer to
// build a process inside a stub by injected calls. It supports Linux on
// x86-64 only.
//
// A Tracer owns one OS thread. The kernel accepts ptrace requests for a
// tracee only from the thread that attached to it, so every method sends
// its work to that thread and waits for the result. Methods may be
// called from any goroutine.
//
// The usual sequence is:
//
//	t := ptrace.NewTracer()
//	defer t.Close()
//	tids, err := t.SeizeProcess(pid, 0)
//	err = t.InterruptProcess(pid)
//	regs, err := t.GetRegs(tid)
//	ret, err := t.Syscall(tid, unix.SYS_GETPID)
//	err = t.DetachProcess(pid)
//
// Two rules apply to the whole process that uses a Tracer:
//
//   - No other code in the process may wait (wait4, waitid, os/exec's
//     Wait) for a thread the Tracer holds. The kernel reports a tracee's
//     stops to every thread of the tracer's process, so a stop that
//     another waiter consumes never reaches the Tracer, which then
//     times out.
//   - If the Tracer's process dies, the kernel detaches every tracee and
//     lets it run on from the registers and memory it has at that
//     moment. Between injected calls that is the tracee's own state, so
//     it continues unharmed. During an injected call it is not, unless a
//     SIGSTOP holds the tracee and a Journal and Undo give the state
//     back: see Tracer.Syscall.
package ptrace
