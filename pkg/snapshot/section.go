package snapshot

import "fmt"

// Stream constants. The documentation in doc.go describes the layout.
const (
	// Magic starts every decompressed snapshot stream.
	Magic = "KSUSNAP\x00"
	// MajorVersion changes when a reader of the previous major version
	// would misread the stream; readers reject other major versions.
	MajorVersion = 1
	// MinorVersion changes when fields or section types are added that
	// older readers of the same major version can skip.
	MinorVersion = 1

	fileHeaderSize    = 16 // magic, major, minor, CRC-32C
	sectionHeaderSize = 12 // type, length
	checksumSize      = 4
)

// Size and count limits. A reader rejects anything larger before it
// allocates for it, so a corrupted length cannot exhaust memory.
//
// Limitation: a process beyond a count limit (more than 65536 threads,
// 262144 mappings, ...) cannot be dumped, because the writer rejects it.
// Raising a limit changes no encoding, only which snapshots older
// readers accept, so it needs no new major version.
const (
	// MaxSectionSize bounds any section's payload. Page and unknown
	// sections are streamed, so it bounds reading, not memory.
	MaxSectionSize = 1 << 32
	// MaxRecordSize bounds the payload of a section that is decoded in
	// memory: every section type except page sections.
	MaxRecordSize = 1 << 28

	maxPagesHeader  = 1 << 21 // encoded Pages record at the start of a page section
	maxRanges       = 1 << 16 // ranges per page section
	maxThreads      = 1 << 16
	maxVMAs         = 1 << 18 // four times the default vm.max_map_count (65530)
	maxFDs          = 1 << 20 // the default fs.nr_open
	maxSigactions   = 64
	maxPending      = 1 << 16 // pending signals per thread or process
	maxItimers      = 3
	maxPosixTimers  = 1 << 16
	maxGroups       = 1 << 16 // NGROUPS_MAX
	maxRlimits      = 64
	maxAuxv         = 1 << 10 // words of the auxiliary vector
	maxEpollTargets = 1 << 20
	maxPipePackets  = 1 << 20 // buffers of a 4 GiB pipe with 4 KiB pages
	maxSockOpts     = 1 << 10
	maxMessages     = 1 << 16 // messages per socket queue
	maxLinks        = 1 << 12 // network interfaces in Meta
	maxAddrs        = 1 << 12 // addresses per network interface
	maxRoutes       = 1 << 16 // routes in Meta
	maxMessageFiles = 1 << 10 // descriptors in flight per message
	maxPendingConns = 1 << 16 // connections in a listening socket's accept queue
)

// SectionType identifies what a section's payload holds.
type SectionType uint32

// Section types. The numbers are part of the format and never change
// meaning within a major version.
const (
	SectionMeta         SectionType = 1
	SectionProcess      SectionType = 2
	SectionFile         SectionType = 3
	SectionPipe         SectionType = 4
	SectionSharedMemory SectionType = 5
	SectionPages        SectionType = 6
	SectionEnd          SectionType = 7
	SectionPath         SectionType = 8 // since minor version 1
)

// String returns the section type's name, or "type(N)" for a type this
// version does not know.
func (t SectionType) String() string {
	switch t {
	case SectionMeta:
		return "meta"
	case SectionProcess:
		return "process"
	case SectionFile:
		return "file"
	case SectionPipe:
		return "pipe"
	case SectionSharedMemory:
		return "shared memory"
	case SectionPages:
		return "pages"
	case SectionEnd:
		return "end"
	case SectionPath:
		return "path"
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// isRecord reports whether sections of type t are record sections, which
// must come before the first page section.
func (t SectionType) isRecord() bool {
	switch t {
	case SectionProcess, SectionFile, SectionPipe, SectionSharedMemory, SectionPath:
		return true
	}
	return false
}
