// Package vdso reads the functions a vDSO exports and plans how a process
// that was linked against one kernel's vDSO keeps working on another's.
//
// A process looks up vDSO functions once, at start, and keeps their
// addresses (glibc and the Go runtime both do). After a kexec the new
// kernel's vDSO may place its functions at other offsets, or lack some
// (6.12 has getrandom, 6.1 does not). Plan compares the vDSO recorded in
// the snapshot with the running kernel's and chooses one of two
// strategies:
//
//   - Remap: every function the old vDSO exported is at the same offset
//     in a new vDSO of the same size, so the new vDSO is mapped where the
//     old one was.
//   - Trampoline: the old vDSO's bytes are copied to ordinary memory at
//     its old address, so its ELF headers and symbol table still read
//     right. The new vDSO is mapped elsewhere. Each exported function's
//     entry in the copy is overwritten with a jump to the same function
//     in the new vDSO, or with a direct system call when the new vDSO
//     lacks it.
package vdso
