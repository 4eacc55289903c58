package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// PathStats count the tmpfs content that Restore recreated from the
// snapshot's path sections, and list the disk paths it left alone.
type PathStats struct {
	Dirs    int    // directories created, and tmpfs roots that Options.MountTmpfs mounted
	Files   int    // regular files created
	Bytes   uint64 // file content written
	Present int    // paths that already existed and were left as they were
	// Kept are the paths on disk below /tmp that the processes use. The
	// caller keeps the boot-time cleanup away from them (tmpfiles.d).
	Kept []string
}

// pathState is the progress of recreating the snapshot's paths.
type pathState struct {
	stats   PathStats
	mounted map[string]error    // tmpfs mount point to the result of preparing it
	ours    map[string]bool     // mount points that Options.MountTmpfs mounted
	skip    map[string]bool     // files that existed: their content is not written
	pids    map[string][]uint32 // path to the processes that use it
	errs    map[int32]error     // process to the first path it lacks
	times   []*snapshot.PathEntry
	// inodes maps the old kernel's identity of each recreated path to
	// the new one.
	inodes map[fileID]fileID
}

// fileID is a file's identity: st_dev and st_ino.
type fileID struct{ dev, inode uint64 }

func newPathState() *pathState {
	return &pathState{mounted: map[string]error{}, ours: map[string]bool{}, skip: map[string]bool{},
		pids: map[string][]uint32{}, errs: map[int32]error{}, inodes: map[fileID]fileID{}}
}

// takePath recreates one path section. A path that cannot be recreated
// is noted against the processes that use it, whose trees failPathUsers
// removes once the tasks exist.
//
// Preconditions: no process of the snapshot has been created yet, and
// the restorer's root is the new root, so the paths resolve as on the
// old kernel.
func (rs *restorer) takePath(e *snapshot.PathEntry) {
	ps := rs.paths
	if e.Mount == "" {
		if !slices.Contains(ps.stats.Kept, e.Path) {
			ps.stats.Kept = append(ps.stats.Kept, e.Path)
		}
		return
	}
	if len(e.PIDs) > 0 {
		ps.pids[e.Path] = e.PIDs
	}
	if ps.skip[e.Path] && e.Mode == 0 {
		return // a later chunk of a file that exists or failed
	}
	if err := rs.recreatePath(e); err != nil {
		ps.skip[e.Path] = true
		for _, pid := range ps.pids[e.Path] {
			if ps.errs[int32(pid)] == nil {
				ps.errs[int32(pid)] = fmt.Errorf("recreate %s on the tmpfs at %s: %w", e.Path, e.Mount, err)
			}
		}
		rs.logf("recreate %s: %v", e.Path, err)
	}
}

// recreatePath creates the directory or file of e, or writes a later
// chunk of a file's content.
func (rs *restorer) recreatePath(e *snapshot.PathEntry) error {
	ps := rs.paths
	if err := rs.prepareMount(e.Mount); err != nil {
		return err
	}
	switch {
	case e.Mode == 0:
		return ps.writeChunk(e)
	case e.Mode&unix.S_IFMT == unix.S_IFDIR:
		return ps.createDir(e)
	case e.Mode&unix.S_IFMT == unix.S_IFREG:
		return ps.createFile(e)
	}
	return fmt.Errorf("mode %#o is neither a directory nor a regular file", e.Mode)
}

// prepareMount checks once per mount point that a tmpfs is mounted
// there, and has Options.MountTmpfs mount one when it is not.
func (rs *restorer) prepareMount(dir string) error {
	ps := rs.paths
	if err, done := ps.mounted[dir]; done {
		return err
	}
	err := checkTmpfs(dir)
	if err != nil && rs.opts.MountTmpfs != nil {
		rs.logf("no tmpfs at %s (%v): mounting one", dir, err)
		if err = rs.opts.MountTmpfs(dir); err == nil {
			ps.ours[dir] = true
			err = checkTmpfs(dir)
		}
	}
	ps.mounted[dir] = err
	return err
}

// checkTmpfs returns an error unless a tmpfs is mounted on dir. A
// directory that only lies on a tmpfs is not enough: content below it
// would be hidden by the tmpfs that the real init mounts there, as
// systemd does on /dev/shm (whose devtmpfs also reports TMPFS_MAGIC) or
// logind on /run/user/UID.
func checkTmpfs(dir string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("%s is on a filesystem of type %#x, not a tmpfs", dir, fs.Type)
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return &os.PathError{Op: "stat", Path: filepath.Dir(dir), Err: err}
	}
	if dir != "/" && st.Dev == parent.Dev {
		return fmt.Errorf("%s is a directory of the tmpfs above it, not a tmpfs mount point", dir)
	}
	return nil
}

// createDir creates the directory of e with its owner and mode. An
// existing directory keeps its owner and mode, except the root of a
// tmpfs that Options.MountTmpfs mounted for the restore.
func (ps *pathState) createDir(e *snapshot.PathEntry) error {
	err := unix.Mkdir(e.Path, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Lstat(e.Path, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: e.Path, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s exists with mode %#o, want a directory", e.Path, st.Mode)
		}
		if !ps.ours[e.Path] {
			ps.stats.Present++
			return nil
		}
	} else if err != nil {
		return &os.PathError{Op: "mkdir", Path: e.Path, Err: err}
	}
	if err := ps.created(e); err != nil {
		return err
	}
	ps.stats.Dirs++
	ps.times = append(ps.times, e)
	return nil
}

// createFile creates the regular file of e with its first chunk of
// content, its size, owner and mode. An existing file is left as it is,
// and the later chunks of its content are skipped.
func (ps *pathState) createFile(e *snapshot.PathEntry) error {
	fd, err := unix.Open(e.Path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		ps.skip[e.Path] = true
		ps.stats.Present++
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: e.Path, Err: err}
	}
	f := os.NewFile(uintptr(fd), e.Path)
	defer f.Close()
	if _, err := f.Write(e.Data); err != nil {
		return err
	}
	if err := f.Truncate(e.Size); err != nil {
		return err
	}
	if err := ps.created(e); err != nil {
		return err
	}
	ps.stats.Files++
	ps.stats.Bytes += uint64(len(e.Data))
	ps.times = append(ps.times, e)
	return nil
}

// writeChunk writes a later chunk of a file's content at its offset.
func (ps *pathState) writeChunk(e *snapshot.PathEntry) error {
	f, err := os.OpenFile(e.Path, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(e.Data, int64(e.Offset)); err != nil {
		return err
	}
	ps.stats.Bytes += uint64(len(e.Data))
	return nil
}

// created gives the new path of e its owner and mode, and maps its old
// identity to the new one.
func (ps *pathState) created(e *snapshot.PathEntry) error {
	if err := setOwnerMode(e); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(e.Path, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: e.Path, Err: err}
	}
	if e.Inode != 0 {
		ps.inodes[fileID{e.Dev, e.Inode}] = fileID{st.Dev, st.Ino}
	}
	return nil
}

// remapRefs points the snapshot's references to recreated paths at the
// new files: the restore checks that each file it opens or maps is the
// one the dump saw, by device and inode.
func (rs *restorer) remapRefs() {
	remap := func(ref *snapshot.FileRef) {
		if id, ok := rs.paths.inodes[fileID{ref.Dev, ref.Inode}]; ok && ref.Path != "" {
			ref.Dev, ref.Inode = id.dev, id.inode
		}
	}
	for _, f := range rs.files {
		remap(&f.Ref)
	}
	for _, p := range rs.procs {
		if p.MM == nil {
			continue
		}
		remap(&p.MM.Exe)
		for i := range p.MM.VMAs {
			remap(&p.MM.VMAs[i].File)
		}
	}
}

// setOwnerMode gives the path of e its owner, then its mode: chown
// clears the set-user-ID and set-group-ID bits, and mkdir and open apply
// the umask.
func setOwnerMode(e *snapshot.PathEntry) error {
	if err := unix.Lchown(e.Path, int(e.UID), int(e.GID)); err != nil {
		return &os.PathError{Op: "chown", Path: e.Path, Err: err}
	}
	if err := unix.Chmod(e.Path, e.Mode&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: e.Path, Err: err}
	}
	return nil
}

// finishPaths sets the modification times of the created paths, points
// the snapshot's references at them, and removes the trees of the
// processes that lack a path.
//
// Preconditions: every path section has been read, and the tasks exist.
func (rs *restorer) finishPaths() error {
	ps := rs.paths
	rs.finishPathTimes()
	if ps.stats.Dirs+ps.stats.Files > 0 || len(ps.stats.Kept) > 0 {
		rs.logf("tmpfs content: %d directories, %d files, %d bytes recreated, %d present; %d paths on disk kept",
			ps.stats.Dirs, ps.stats.Files, ps.stats.Bytes, ps.stats.Present, len(ps.stats.Kept))
	}
	rs.stats.Paths = ps.stats
	rs.remapRefs()
	return rs.failPathUsers()
}

// finishPathTimes sets the modification times of the created paths,
// deepest first, so that creating a path does not change its
// directory's time afterwards.
func (rs *restorer) finishPathTimes() {
	ps := rs.paths
	for i := len(ps.times) - 1; i >= 0; i-- {
		e := ps.times[i]
		ts := []unix.Timespec{unix.NsecToTimespec(time.Now().UnixNano()), unix.NsecToTimespec(e.ModTime.UnixNano())}
		if e.ModTime.IsZero() {
			continue
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, e.Path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			rs.logf("set modification time of %s: %v", e.Path, err)
		}
	}
}

// failPathUsers removes the trees of the processes whose paths could not
// be recreated.
func (rs *restorer) failPathUsers() error {
	pids := make([]int32, 0, len(rs.paths.errs))
	for pid := range rs.paths.errs {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		root, ok := rs.roots[pid]
		if !ok || rs.failed[root] {
			continue
		}
		if err := rs.dropTree(pid, rs.paths.errs[pid]); err != nil {
			return err
		}
	}
	return nil
}
