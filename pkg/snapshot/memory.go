package snapshot

import (
	"fmt"
	"time"
)

// MM is a process's address space: the mm_struct fields that prctl
// PR_SET_MM restores, the auxiliary vector and the memory map. Page
// contents are not here but in page sections.
type MM struct {
	StartCode  uint64
	EndCode    uint64
	StartData  uint64
	EndData    uint64
	StartBrk   uint64
	Brk        uint64
	StartStack uint64
	ArgStart   uint64
	ArgEnd     uint64
	EnvStart   uint64
	EnvEnd     uint64
	Auxv       []uint64 // auxiliary vector as /proc/PID/auxv holds it: type, value pairs ending with AT_NULL
	Exe        FileRef  // the executable (/proc/PID/exe)
	VMAs       []VMA    // the memory map in ascending address order
}

// VMA is one mapping of the memory map (/proc/PID/maps, smaps).
type VMA struct {
	Start   uint64
	End     uint64 // first address past the mapping
	Prot    uint32 // PROT_READ, PROT_WRITE, PROT_EXEC as mmap takes them
	Flags   VMAFlags
	Kind    VMAKind
	Offset  uint64  // offset in bytes into the file or shared memory object (vm_pgoff times the page size)
	File    FileRef // the mapped file, for VMAFile
	ShmID   uint64  // SharedMemory.ID, for VMAShmem
	Madvise Madvise
}

// VMAKind is the backing of a mapping. It decides how the restore
// recreates the mapping and which pages the snapshot must carry.
type VMAKind uint8

// Mapping kinds. For VMAAnon, a page absent from the page sections reads
// as zero after the restore. For VMAFile, it reads as the file's content.
const (
	VMAAnon       VMAKind = iota // private anonymous memory, including the heap and stacks
	VMAFile                      // a mapped file, private or shared
	VMAShmem                     // shared anonymous memory, a memfd or System V shared memory (see ShmID)
	VMAVDSO                      // [vdso]
	VMAVVAR                      // [vvar]
	VMAVVARVClock                // [vvar_vclock], a separate mapping since Linux 6.12
	VMAVSyscall                  // [vsyscall]
)

// String returns the kind's name.
func (k VMAKind) String() string {
	switch k {
	case VMAAnon:
		return "anon"
	case VMAFile:
		return "file"
	case VMAShmem:
		return "shmem"
	case VMAVDSO:
		return "vdso"
	case VMAVVAR:
		return "vvar"
	case VMAVVARVClock:
		return "vvar_vclock"
	case VMAVSyscall:
		return "vsyscall"
	}
	return fmt.Sprintf("vma(%d)", uint8(k))
}

// VMAFlags are the mapping flags that the memory map shows besides the
// protection.
type VMAFlags uint32

// Mapping flags. A mapping without VMAShared is private (MAP_PRIVATE).
const (
	VMAShared      VMAFlags = 1 << iota // MAP_SHARED
	VMAGrowsDown                        // a stack that grows down (VM_GROWSDOWN)
	VMALocked                           // mlock'ed (VM_LOCKED)
	VMALockOnFault                      // mlock2 MLOCK_ONFAULT (VM_LOCKONFAULT)
	VMAHugeTLB                          // hugetlbfs memory (VM_HUGETLB)
)

// Madvise are the madvise(2) advice values that stay on a mapping, one
// bit each.
type Madvise uint32

// Madvise bits, named after the advice that sets them.
const (
	MadvRandom     Madvise = 1 << iota // MADV_RANDOM
	MadvSequential                     // MADV_SEQUENTIAL
	MadvDontFork                       // MADV_DONTFORK
	MadvDontDump                       // MADV_DONTDUMP
	MadvMergeable                      // MADV_MERGEABLE
	MadvHugePage                       // MADV_HUGEPAGE
	MadvNoHugePage                     // MADV_NOHUGEPAGE
	MadvWipeOnFork                     // MADV_WIPEONFORK
)

// FileRef names a file and records what it looked like at the dump, so
// the restore can tell whether the file it opens is the same one.
type FileRef struct {
	Path    string
	Dev     uint64 // st_dev
	Inode   uint64
	Mode    uint32 // st_mode, type bits included
	Rdev    uint64 // st_rdev, for a device
	Size    int64
	ModTime time.Time
}

// SharedMemory is a memory object that several mappings or file
// descriptors can share: shared anonymous memory, a memfd, a System V
// shared memory segment or a deleted file. Its content is in page
// sections with its ID.
type SharedMemory struct {
	ID    uint64 // snapshot-wide identity, never 0
	Kind  ShmKind
	Size  uint64 // object size in bytes
	Name  string // memfd name without the "memfd:" prefix
	Flags uint32 // memfd_create flags (MFD_ALLOW_SEALING, MFD_HUGETLB ...)
	Seals uint32 // F_GET_SEALS
	Key   int32  // System V key
	Inode uint64 // inode on the old kernel, for logs
	Mode  uint32 // st_mode permission bits, for ShmDeletedFile
}

// ShmKind is the kind of a SharedMemory object.
type ShmKind uint8

// Shared memory kinds.
const (
	ShmAnon  ShmKind = iota // MAP_SHARED|MAP_ANONYMOUS memory
	ShmMemfd                // memfd_create(2)
	ShmSysV                 // shmget(2)
	// ShmDeletedFile is a regular file that was unlinked while open or
	// mapped. Name is its path without " (deleted)"; the restore
	// creates it there again and unlinks it.
	ShmDeletedFile
)

// String returns the kind's name.
func (k ShmKind) String() string {
	switch k {
	case ShmAnon:
		return "anon"
	case ShmMemfd:
		return "memfd"
	case ShmSysV:
		return "sysv"
	case ShmDeletedFile:
		return "deleted file"
	}
	return fmt.Sprintf("shm(%d)", uint8(k))
}

// Pages describes one page section: whose memory it holds and which
// ranges. The ranges' contents follow in order, with nothing between
// them.
type Pages struct {
	PID    int32  // process whose private memory this is, when ShmID is 0
	ShmID  uint64 // SharedMemory.ID whose content this is; then Addr is an offset into the object
	Ranges []PageRange
}

// PageRange is a run of pages: Len bytes from Addr. Both are multiples of
// the page size.
type PageRange struct {
	Addr uint64
	Len  uint64
}

// Size returns the number of data bytes that follow the page section's
// header: the sum of the ranges' lengths. It does not check for overflow,
// which validation does.
func (p *Pages) Size() uint64 {
	var n uint64
	for _, r := range p.Ranges {
		n += r.Len
	}
	return n
}
