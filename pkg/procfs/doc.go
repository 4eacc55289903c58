// Package procfs parses the text files of /proc/PID that a checkpoint
// reads: maps and smaps, status, stat, fdinfo, timers, mountinfo,
// limits, cgroup, net/unix, net/tcp and net/tcp6, and the binary
// pagemap.
//
// Every Read function takes the proc root directory ("/proc" on a live
// system) and a process or thread id, so tests read captured trees under
// testdata/proc/ and ksu-init can read a proc mounted anywhere. A thread
// id works wherever a process id does, because /proc/TID is a directory
// for every thread even though ls does not list it. Every Parse function
// takes the file's contents and touches nothing else.
//
// Values keep the kernel's units unless a field's comment states
// otherwise: addresses and sizes in bytes, times in clock ticks where
// the file prints ticks.
package procfs
