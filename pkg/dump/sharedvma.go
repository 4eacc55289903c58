package dump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// checkObjectVMA rejects a shared or deleted-file mapping that the
// snapshot cannot hold. It accepts shared anonymous memory, memfds,
// regular files mapped MAP_SHARED and deleted regular files.
//
// Limitation: System V shared memory and shared mappings of devices are
// rejected; they need a SharedMemory record of kind ShmSysV or a device
// model of their own.
func checkObjectVMA(pid int, m procfs.Mapping, object string) *RejectError {
	path := mapPath(pid, m.Start, m.End)
	switch {
	case m.Path == sharedAnonPath && m.Perms.Shared, strings.HasPrefix(m.Path, "/memfd:"):
		return nil
	case strings.HasPrefix(m.Path, "/SYSV"):
		return notYet(pid, object, "System V shared memory")
	case strings.HasSuffix(m.Path, deletedSuffix):
		return checkDeleted(pid, object, path)
	case !strings.HasPrefix(m.Path, "/") || m.Inode == 0:
		return notYet(pid, object, "shared mapping without a file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: "shared mapping", Reason: err.Error()}
	}
	if mode := fi.Sys().(*syscall.Stat_t).Mode; mode&unix.S_IFMT != unix.S_IFREG {
		return notYet(pid, object, fmt.Sprintf("shared mapping of a file of mode %#o", mode))
	}
	return nil
}

// recordObjectVMAs points the shared and deleted-file mappings of pid at
// their SharedMemory objects. Shared anonymous memory and shared memfd
// mappings become VMAShmem; private memfd mappings and mappings of
// deleted files stay VMAFile, so that their private copies of pages are
// saved, and get the object's ShmID. Shared mappings of files that still
// have a name keep their path: the file itself holds the data.
func (o *objectTable) recordObjectVMAs(pid int, mm *snapshot.MM) error {
	for i := range mm.VMAs {
		v := &mm.VMAs[i]
		if v.Kind != snapshot.VMAFile {
			continue
		}
		path := mapPath(pid, v.Start, v.End)
		var id uint64
		var err error
		switch {
		case v.File.Path == sharedAnonPath && v.Flags&snapshot.VMAShared != 0:
			id, err = o.add(v.File, path, func(shm *snapshot.SharedMemory) error {
				shm.Kind = snapshot.ShmAnon
				return nil
			})
		case strings.HasPrefix(v.File.Path, "/memfd:"):
			id, err = o.addMemfd(path, v.File)
		case strings.HasSuffix(v.File.Path, deletedSuffix):
			id, err = o.deletedFile(path, v.File)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("record vma %#x-%#x of process %d: %w", v.Start, v.End, pid, err)
		}
		v.ShmID = id
		if v.Flags&snapshot.VMAShared != 0 && !strings.HasSuffix(v.File.Path, deletedSuffix) {
			v.Kind, v.File = snapshot.VMAShmem, snapshot.FileRef{}
		}
	}
	return nil
}

// writeObjects writes the SharedMemory records.
func (o *objectTable) writeObjects(sw *snapshot.Writer) error {
	for _, obj := range o.list {
		if err := sw.WriteSharedMemory(obj.shm); err != nil {
			return fmt.Errorf("write shared memory %d (%v %s): %w", obj.shm.ID, obj.shm.Kind, obj.shm.Name, err)
		}
	}
	return nil
}

// writeContents writes the content of every object as page sections with
// offsets into the object, skipping holes and pages of zeros.
func (o *objectTable) writeContents(sw *snapshot.Writer) (uint64, error) {
	var total uint64
	for _, obj := range o.list {
		n, err := writeObject(sw, obj)
		total += n
		if err != nil {
			return total, fmt.Errorf("write content of shared memory %d (%s): %w", obj.shm.ID, obj.path, err)
		}
	}
	return total, nil
}

func writeObject(sw *snapshot.Writer, obj *sharedObject) (uint64, error) {
	f, err := os.Open(obj.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	page := int64(os.Getpagesize())
	size := int64(obj.shm.Size)
	buf := make([]byte, chunkPages*page)
	var total uint64
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return total, fmt.Errorf("seek data from %d: %w", off, err)
		}
		start := data / page * page
		end := min(size, start+int64(len(buf)))
		n, err := writeObjectChunk(sw, f, obj.shm.ID, start, buf[:roundUp(end-start, page)])
		total += n
		if err != nil {
			return total, err
		}
		off = start + int64(len(buf))
	}
	return total, nil
}

// writeObjectChunk writes the pages of f at off that are not all zeros.
// A short read at the end of the object leaves the rest of the last page
// zero.
func writeObjectChunk(sw *snapshot.Writer, f *os.File, id uint64, off int64, buf []byte) (uint64, error) {
	clear(buf)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read at %d: %w", off, err)
	}
	page := uint64(os.Getpagesize())
	pages := &snapshot.Pages{ShmID: id}
	var data bytes.Buffer
	for i := uint64(0); i < uint64(len(buf)); i += page {
		if isZero(buf[i : i+page]) {
			continue
		}
		addRange(pages, uint64(off)+i, page)
		data.Write(buf[i : i+page])
	}
	if len(pages.Ranges) == 0 {
		return 0, nil
	}
	n := uint64(data.Len())
	return n, sw.WritePages(pages, &data)
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
