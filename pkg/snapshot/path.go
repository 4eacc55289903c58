package snapshot

import (
	"errors"
	"fmt"
	"time"
)

// PathEntry is a filesystem path that the processes reference, directly
// or as a directory above a referenced path, and that a fresh boot would
// not provide: a directory or a regular file on a tmpfs, whose content
// the new kernel starts without, or a path on disk below /tmp that the
// boot-time cleanup would delete.
//
// The writer emits the entries of one tmpfs in path order, so that a
// directory comes before everything below it. A regular file larger than
// a section should hold comes in several entries with the same path: the
// first one carries the metadata, and each one carries Data to write at
// Offset.
type PathEntry struct {
	Path string // absolute path on the old kernel
	// Mount is the mount point of the tmpfs that holds Path. It is empty
	// for a path on another filesystem, which the restore only protects
	// from the boot-time cleanup and does not recreate.
	Mount   string
	Mode    uint32 // st_mode, type bits included (S_IFDIR or S_IFREG on a tmpfs)
	UID     uint32
	GID     uint32
	Size    int64 // file size in bytes, for a regular file
	ModTime time.Time
	Offset  uint64 // where Data goes in the file
	Data    []byte // file content from Offset
	// PIDs are the processes that reference Path or a path below it.
	// When the restore cannot recreate the entry, their trees fail.
	PIDs []uint32
	// Dev and Inode identify the path on the old kernel. FileRefs with
	// the same identity name the file that the restore recreates.
	Dev   uint64
	Inode uint64
}

// maxPathPIDs bounds PathEntry.PIDs: the processes of a snapshot.
const maxPathPIDs = 1 << 22 // PID_MAX_LIMIT

var pathEntrySchema = newSchema("PathEntry",
	stringField(1, "path", func(p *PathEntry) *string { return &p.Path }),
	stringField(2, "mount", func(p *PathEntry) *string { return &p.Mount }),
	uintField(3, "mode", func(p *PathEntry) *uint32 { return &p.Mode }),
	uintField(4, "uid", func(p *PathEntry) *uint32 { return &p.UID }),
	uintField(5, "gid", func(p *PathEntry) *uint32 { return &p.GID }),
	intField(6, "size", func(p *PathEntry) *int64 { return &p.Size }),
	timeField(7, "mod_time", func(p *PathEntry) *time.Time { return &p.ModTime }),
	uintField(8, "offset", func(p *PathEntry) *uint64 { return &p.Offset }),
	bytesField(9, "data", func(p *PathEntry) *[]byte { return &p.Data }),
	packedField(10, "pids", func(p *PathEntry) *[]uint32 { return &p.PIDs }, maxPathPIDs),
	uintField(11, "dev", func(p *PathEntry) *uint64 { return &p.Dev }),
	uintField(12, "inode", func(p *PathEntry) *uint64 { return &p.Inode }),
)

// WritePath writes a PathEntry section.
func (w *Writer) WritePath(p *PathEntry) error {
	if p.Path == "" || p.Path[0] != '/' {
		return fmt.Errorf("write path section: path %q is not absolute", p.Path)
	}
	if p.Mount == "" && len(p.Data) > 0 {
		return errors.New("write path section " + p.Path + ": data for a path outside a tmpfs")
	}
	return writeRecordSection(w, SectionPath, p.Path, pathEntrySchema, p)
}

// Path decodes a path section.
func (s *Section) Path() (*PathEntry, error) {
	return decodeSection(s, SectionPath, pathEntrySchema)
}
