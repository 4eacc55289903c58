package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// objectState holds the restore state of the kinds that outlive one
// descriptor: shared memory objects, named FIFOs, shared file mappings
// and filled epoll interest lists.
type objectState struct {
	shms      map[uint64]*snapshot.SharedMemory
	created   map[uint64]*fdFile           // SharedMemory.ID to the restorer's read-write descriptor
	fifos     map[uint64]*fdFile           // Pipe.ID to the restorer's read-write end of a named FIFO
	shared    map[snapshot.FileRef]*fdFile // files mapped MAP_SHARED
	epollDone map[uint64]bool              // epoll File.IDs whose interest list is filled
}

// objects returns the restore's objectState, creating it on first use.
func (rs *restorer) objects() *objectState {
	if rs.objs == nil {
		rs.objs = &objectState{shms: map[uint64]*snapshot.SharedMemory{}, created: map[uint64]*fdFile{},
			fifos: map[uint64]*fdFile{}, shared: map[snapshot.FileRef]*fdFile{}, epollDone: map[uint64]bool{}}
	}
	return rs.objs
}

func (o *objectState) close() {
	if o == nil {
		return
	}
	for _, m := range []map[uint64]*fdFile{o.created, o.fifos} {
		for _, f := range m {
			f.Close()
		}
	}
	for _, f := range o.shared {
		f.Close()
	}
}

// objectFile returns the restorer's descriptor of SharedMemory id,
// creating the object on first use. Shared anonymous memory is created
// by an mmap injected into process pid, the only kind that needs one.
func (rs *restorer) objectFile(pid int, id uint64) (*fdFile, error) {
	o := rs.objects()
	if f, ok := o.created[id]; ok {
		return f, nil
	}
	shm, ok := o.shms[id]
	if !ok {
		return nil, fmt.Errorf("shared memory %d is not in the snapshot", id)
	}
	var f *fdFile
	var err error
	switch shm.Kind {
	case snapshot.ShmAnon:
		f, err = rs.newSharedAnon(pid, shm.Size)
	case snapshot.ShmMemfd:
		f, err = newMemfd(shm)
	case snapshot.ShmDeletedFile:
		f, err = newDeletedFile(shm)
	default:
		err = fmt.Errorf("shared memory of kind %v is not supported yet", shm.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("recreate shared memory %d (%v %q): %w", id, shm.Kind, shm.Name, err)
	}
	o.created[id] = f
	return f, nil
}

// newSharedAnon creates shared anonymous memory of size bytes with an
// injected mmap in process pid, opens it through /proc/PID/map_files and
// unmaps it again. The object keeps the kernel's name for such memory,
// "/dev/zero (deleted)", in every mapping made from the descriptor.
func (rs *restorer) newSharedAnon(pid int, size uint64) (*fdFile, error) {
	if pid == 0 {
		return nil, errors.New("shared anonymous memory without a mapping")
	}
	addr, err := rs.t.Syscall(pid, unix.SYS_MMAP, 0, uintptr(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes in process %d: %w", size, pid, err)
	}
	f, err := openFD(fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, addr, uint64(addr)+size), unix.O_RDWR)
	if _, uerr := rs.t.Syscall(pid, unix.SYS_MUNMAP, addr, uintptr(size)); uerr != nil && err == nil {
		f.Close()
		err = fmt.Errorf("unmap %#x in process %d: %w", addr, pid, uerr)
	}
	return f, err
}

func newMemfd(shm *snapshot.SharedMemory) (*fdFile, error) {
	fd, err := unix.MemfdCreate(shm.Name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := &fdFile{fd, "memfd:" + shm.Name}
	if err := unix.Ftruncate(fd, int64(shm.Size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate to %d bytes: %w", shm.Size, err)
	}
	return f, nil
}

// newDeletedFile creates the deleted file at its old path and unlinks it
// at once, so that it lives on the same file system and its descriptors
// read as "PATH (deleted)".
//
// Limitation: when a new file took the old path, the file is created
// under PATH.ksu-deleted-ID instead, which its descriptors then show.
func newDeletedFile(shm *snapshot.SharedMemory) (*fdFile, error) {
	path := filepath.Clean(shm.Name)
	flags := unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags, shm.Mode)
	if errors.Is(err, unix.EEXIST) {
		path = fmt.Sprintf("%s.ksu-deleted-%d", path, shm.ID)
		fd, err = unix.Open(path, flags, shm.Mode)
	}
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: path, Err: err}
	}
	f := &fdFile{fd, path}
	if err := unix.Unlink(path); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	if err := unix.Fchmod(fd, shm.Mode); err != nil {
		f.Close()
		return nil, fmt.Errorf("chmod %s to %#o: %w", path, shm.Mode, err)
	}
	if err := unix.Ftruncate(fd, int64(shm.Size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate %s to %d bytes: %w", path, shm.Size, err)
	}
	return f, nil
}

// writeObjectPages writes one page section of a shared memory object
// through the restorer's descriptor. Mappings made before see the data,
// because they share the object's pages.
func (rs *restorer) writeObjectPages(sec *snapshot.Section) error {
	p := sec.Pages()
	f, err := rs.objectFile(0, p.ShmID)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, r := range p.Ranges {
		for off := uint64(0); off < r.Len; {
			n := min(uint64(len(buf)), r.Len-off)
			if _, err := io.ReadFull(sec, buf[:n]); err != nil {
				return fmt.Errorf("read pages of shared memory %d: %w", p.ShmID, err)
			}
			if _, err := unix.Pwrite(f.fd, buf[:n], int64(r.Addr+off)); err != nil {
				return fmt.Errorf("write %s at %d: %w", f.name, r.Addr+off, err)
			}
			off += n
		}
		rs.stats.Pages += r.Len
	}
	return nil
}

// finishObjects creates the objects that no mapping or page section has
// created yet, cuts every object back to its size, which whole pages of
// content may have passed, and seals the memfds. Seals come last because
// F_SEAL_WRITE stops the content writes.
func (rs *restorer) finishObjects() error {
	o := rs.objects()
	for id, shm := range o.shms {
		if shm.Kind == snapshot.ShmAnon {
			continue // mapped, so created while the memory was rebuilt
		}
		f, err := rs.objectFile(0, id)
		if err != nil {
			return err
		}
		if err := unix.Ftruncate(f.fd, int64(shm.Size)); err != nil {
			return fmt.Errorf("truncate %s to %d bytes: %w", f.name, shm.Size, err)
		}
		if shm.Kind != snapshot.ShmMemfd || shm.Seals == 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_ADD_SEALS, int(shm.Seals)); err != nil {
			return fmt.Errorf("seal %s with %#x: %w", f.name, shm.Seals, err)
		}
	}
	return nil
}

// openObjectFile opens a new description of a memfd or a deleted file
// through the restorer's descriptor, with sf's flags and position.
func (rs *restorer) openObjectFile(sf *snapshot.File) (*fdFile, error) {
	obj, err := rs.objectFile(0, sf.ShmID)
	if err != nil {
		return nil, err
	}
	f, err := openFD(fmt.Sprintf("/proc/self/fd/%d", obj.fd), int(sf.Flags&openFlagsMask))
	if err != nil {
		return nil, err
	}
	if _, err := unix.Seek(f.fd, sf.Pos, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s to %d: %w", f.name, sf.Pos, err)
	}
	return f, nil
}

// mapObject maps a VMA backed by a shared memory object, or a regular
// file mapped MAP_SHARED, whose content the file itself holds.
func (rs *restorer) mapObject(pid int, v snapshot.VMA) error {
	var f *fdFile
	var err error
	if v.ShmID != 0 {
		f, err = rs.objectFile(pid, v.ShmID)
	} else {
		f, err = rs.openShared(v.File)
	}
	if err != nil {
		return err
	}
	flags := uintptr(unix.MAP_PRIVATE | unix.MAP_FIXED)
	if v.Flags&snapshot.VMAShared != 0 {
		flags = unix.MAP_SHARED | unix.MAP_FIXED
	}
	fd, err := rs.installTemp(pid, f)
	if err != nil {
		return err
	}
	_, err = rs.t.Syscall(pid, unix.SYS_MMAP, uintptr(v.Start), uintptr(v.End-v.Start), uintptr(v.Prot), flags, fd, uintptr(v.Offset))
	if _, cerr := rs.t.Syscall(pid, unix.SYS_CLOSE, fd); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// openShared opens a file mapped MAP_SHARED for reading and writing, so
// that the mapping may be writable, and checks that it is the same file
// as at the dump, with the same size and modification time. Those stay
// put after the dump: the kernel sets the time when a process first
// writes to a clean page, and the dumped processes no longer run, while
// writing dirty pages back sets nothing. A file replaced since may get
// the old inode number again, so the inode alone would not catch it.
//
// Limitation: a file the restorer may only read is opened read-only, so
// its shared mapping cannot be made writable later with mprotect.
func (rs *restorer) openShared(ref snapshot.FileRef) (*fdFile, error) {
	o := rs.objects()
	if f, ok := o.shared[ref]; ok {
		return f, nil
	}
	f, err := openFD(ref.Path, unix.O_RDWR)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) {
		f, err = openFD(ref.Path, unix.O_RDONLY)
	}
	if err != nil {
		return nil, err
	}
	if err := sameFile(f, ref, true); err != nil {
		f.Close()
		return nil, err
	}
	o.shared[ref] = f
	return f, nil
}
