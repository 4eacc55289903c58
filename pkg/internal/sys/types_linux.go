//go:build linux && amd64

package sys

// RseqConfiguration is struct ptrace_rseq_configuration, the restartable
// sequences area a thread registered with rseq(2), as returned by
// PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13 and later).
type RseqConfiguration struct {
	// AbiPointer is the user address of the thread's struct rseq, or 0
	// when the thread has not registered one.
	AbiPointer uint64
	// AbiSize is the size in bytes the thread registered.
	AbiSize uint32
	// Signature is the value the kernel expects before every abort
	// handler.
	Signature uint32
	Flags     uint32
	Pad       uint32
}

// SyscallInfo is struct ptrace_syscall_info, returned by
// PTRACE_GET_SYSCALL_INFO (Linux 5.3 and later). Which part of Data is
// valid depends on Op: see the Entry, Exit and Seccomp methods.
type SyscallInfo struct {
	// Op is one of unix.PTRACE_SYSCALL_INFO_NONE, _ENTRY, _EXIT or
	// _SECCOMP.
	Op       uint8
	Reserved uint8
	Flags    uint16
	// Arch is the AUDIT_ARCH_* value of the call's ABI.
	Arch               uint32
	InstructionPointer uint64
	StackPointer       uint64
	// Data is the union of the entry, exit and seccomp members.
	Data [8]uint64
}

// Entry returns the system call number and arguments. They are valid
// when Op is PTRACE_SYSCALL_INFO_ENTRY or PTRACE_SYSCALL_INFO_SECCOMP.
func (s *SyscallInfo) Entry() (nr uint64, args [6]uint64) {
	copy(args[:], s.Data[1:7])
	return s.Data[0], args
}

// Exit returns the return value and whether the kernel reports it as an
// error (a negated errno). They are valid when Op is
// PTRACE_SYSCALL_INFO_EXIT.
func (s *SyscallInfo) Exit() (rval int64, isError bool) {
	return int64(s.Data[0]), s.Data[1]&0xff != 0
}

// SeccompData returns the SECCOMP_RET_DATA bits of the filter result. It
// is valid when Op is PTRACE_SYSCALL_INFO_SECCOMP.
func (s *SyscallInfo) SeccompData() uint32 {
	return uint32(s.Data[7])
}

// peekSiginfoArgs is struct ptrace_peeksiginfo_args.
type peekSiginfoArgs struct {
	off   uint64
	flags uint32
	nr    int32
}
