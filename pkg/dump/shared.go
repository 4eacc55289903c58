package dump

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// deletedSuffix is the suffix the kernel appends to the path of an unlinked
// file in /proc/PID/fd and /proc/PID/maps.
const deletedSuffix = " (deleted)"

// sharedAnonPath is the name the kernel gives MAP_SHARED|MAP_ANONYMOUS
// memory: a shmem file set up like a mapping of /dev/zero.
const sharedAnonPath = "/dev/zero (deleted)"

// fifoIDBase keeps the Pipe.IDs of named FIFOs apart from those of
// anonymous pipes, which are pipefs inode numbers.
const fifoIDBase = 1 << 63

// objectTable holds the memory objects that descriptors and mappings of
// the dumped processes share, keyed by device and inode, and the ids of
// the named FIFOs.
type objectTable struct {
	byInode map[[2]uint64]*sharedObject
	list    []*sharedObject
	fifos   map[[2]uint64]uint64
}

// sharedObject is one SharedMemory record and a /proc path through which
// the dumper opens the object to read its content.
type sharedObject struct {
	shm  *snapshot.SharedMemory
	path string
}

func newObjectTable() *objectTable {
	return &objectTable{byInode: map[[2]uint64]*sharedObject{}, fifos: map[[2]uint64]uint64{}}
}

func fdPath(pid, fd int) string { return fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd) }

func mapPath(pid int, start, end uint64) string {
	return fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, start, end)
}

// fifoID returns the Pipe.ID of the named FIFO ref.
func fifoID(ft *fileTable, ref snapshot.FileRef) uint64 {
	key := [2]uint64{ref.Dev, ref.Inode}
	id, ok := ft.objects.fifos[key]
	if !ok {
		id = fifoIDBase + uint64(len(ft.objects.fifos)) + 1
		ft.objects.fifos[key] = id
	}
	return id
}

// add returns the SharedMemory.ID of the object with ref's identity,
// recording it with fill on first sight.
func (o *objectTable) add(ref snapshot.FileRef, path string, fill func(*snapshot.SharedMemory) error) (uint64, error) {
	key := [2]uint64{ref.Dev, ref.Inode}
	if obj, ok := o.byInode[key]; ok {
		return obj.shm.ID, nil
	}
	shm := &snapshot.SharedMemory{ID: uint64(len(o.list) + 1), Size: uint64(ref.Size), Inode: ref.Inode}
	if err := fill(shm); err != nil {
		return 0, err
	}
	obj := &sharedObject{shm: shm, path: path}
	o.byInode[key] = obj
	o.list = append(o.list, obj)
	return shm.ID, nil
}

// memfd records the memfd that descriptor fd of pid refers to.
func (o *objectTable) memfd(pid, fd int, ref snapshot.FileRef) (uint64, error) {
	return o.addMemfd(fdPath(pid, fd), ref)
}

func (o *objectTable) addMemfd(path string, ref snapshot.FileRef) (uint64, error) {
	return o.add(ref, path, func(shm *snapshot.SharedMemory) error {
		shm.Kind = snapshot.ShmMemfd
		shm.Name = strings.TrimSuffix(strings.TrimPrefix(ref.Path, "/memfd:"), deletedSuffix)
		seals, err := readSeals(path)
		shm.Seals = uint32(seals)
		return err
	})
}

func readSeals(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("read seals of %s: %w", path, err)
	}
	return seals, nil
}

// deletedFile records the unlinked regular file that path opens.
func (o *objectTable) deletedFile(path string, ref snapshot.FileRef) (uint64, error) {
	return o.add(ref, path, func(shm *snapshot.SharedMemory) error {
		shm.Kind = snapshot.ShmDeletedFile
		shm.Name = strings.TrimSuffix(ref.Path, deletedSuffix)
		shm.Mode = ref.Mode & 0o7777
		return nil
	})
}

// checkDeleted rejects a deleted file that still has a name elsewhere: the
// restore would recreate its content as a separate file.
func checkDeleted(pid int, object, path string) *RejectError {
	fi, err := os.Stat(path)
	if err != nil {
		return &RejectError{PID: pid, Object: object, Kind: "deleted file", Reason: err.Error()}
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return notYet(pid, object, fmt.Sprintf("deleted file of mode %#o", st.Mode))
	}
	if st.Nlink != 0 {
		// Limitation: a file unlinked under one name but linked under
		// another is rejected; finding and reopening the other link
		// would lift it.
		return &RejectError{PID: pid, Object: object, Kind: "deleted file",
			Reason: fmt.Sprintf("still has %d links elsewhere", st.Nlink)}
	}
	return nil
}
