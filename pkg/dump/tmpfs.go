package dump

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// tmpfsExcluded are the tmpfs directories whose content belongs to the
// services that create it again at every boot (systemd, udev). The dump
// never copies them, so a restore cannot shadow what those services
// write on the new kernel.
var tmpfsExcluded = []string{"/run/systemd", "/run/udev"}

// cleanedDir is the disk directory that systemd-tmpfiles empties at boot
// (Debian's tmp.conf: "D /tmp"). A path below it that a process
// references gets an entry without content, so that the restore can
// exclude it from that cleanup.
const cleanedDir = "/tmp"

// pathChunk is the largest file content that one path section carries.
// A larger file takes several sections, which keeps each one far below
// snapshot.MaxRecordSize and the memory of one decoded record small.
const pathChunk = 16 << 20

// pathUse is a path that a process references. A whole use needs the
// path itself: an open file, a mapped file, a working directory. Other
// uses need only the directories above it: the name of a bound Unix
// socket or a FIFO, which the restore creates itself, or a deleted file.
type pathUse struct {
	pid   int32
	path  string
	whole bool
}

// pathPlan collects the entries of the paths that the processes use.
type pathPlan struct {
	entries map[string]*snapshot.PathEntry
}

// processPaths returns the paths that process p references through its
// descriptors, mappings, executable and working directory.
func processPaths(p *snapshot.Process, files map[uint64]*snapshot.File) []pathUse {
	var uses []pathUse
	add := func(path string, whole bool) {
		if path == "" || path[0] != '/' {
			return
		}
		if name, ok := strings.CutSuffix(path, deletedSuffix); ok {
			path, whole = name, false
		}
		uses = append(uses, pathUse{pid: p.PID, path: path, whole: whole})
	}
	add(p.Identity.Cwd, true)
	for _, fd := range p.FDs {
		f := files[fd.File]
		if f == nil {
			continue
		}
		switch f.Kind {
		case snapshot.FileRegular, snapshot.FileDirectory:
			add(f.Ref.Path, true)
		case snapshot.FileUnixSocket, snapshot.FileFIFO:
			add(f.Ref.Path, false)
		}
	}
	if p.MM != nil {
		add(p.MM.Exe.Path, true)
		for _, v := range p.MM.VMAs {
			if v.Kind == snapshot.VMAFile {
				add(v.File.Path, true)
			}
		}
	}
	return uses
}

// planPaths builds the path entries of every process. The paths are read
// through /proc/PID/root, and their filesystems come from the process's
// mountinfo.
//
// Limitation: entries are keyed by path alone. Processes in different
// mount namespaces that use the same path on different tmpfs mounts get
// one entry, and the restore recreates every path in its own root, so
// such processes are restored with a merged view.
func planPaths(procs []*process, files map[uint64]*snapshot.File) (*pathPlan, error) {
	plan := &pathPlan{entries: map[string]*snapshot.PathEntry{}}
	for _, p := range procs {
		if p.proc.State == snapshot.StateZombie {
			continue
		}
		mounts, err := procfs.ReadMountInfo(procRoot, p.pid)
		if err != nil {
			return nil, fmt.Errorf("read mounts of process %d: %w", p.pid, err)
		}
		root := fmt.Sprintf("%s/%d/root", procRoot, p.pid)
		for _, u := range processPaths(p.proc, files) {
			if !u.whole && p.proc.Identity.Root == "/" {
				u.path = resolveDir(u.path)
			}
			if err := plan.add(root, mounts, u); err != nil {
				return nil, fmt.Errorf("record path %s of process %d: %w", u.path, p.pid, err)
			}
		}
	}
	return plan, nil
}

// resolveDir returns path with the symbolic links of its directory
// resolved, or path itself when they cannot be. The kernel reports the
// name of a bound Unix socket as the process passed it to bind, for
// example /var/run/app.sock where /var/run links to /run, while the
// other paths come resolved.
func resolveDir(path string) string {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return path
	}
	return filepath.Join(dir, filepath.Base(path))
}

// add records the entries that use u needs. On a tmpfs, those are the
// mount point, every directory below it down to the path, and the path
// itself for a whole use. On disk below cleanedDir, it is the path alone.
func (pl *pathPlan) add(root string, mounts []procfs.Mount, u pathUse) error {
	m, ok := mountOf(mounts, u.path)
	if !ok || excludedPath(u.path) {
		return nil
	}
	if m.FSType != "tmpfs" {
		if !below(u.path, cleanedDir) || u.path == cleanedDir {
			return nil
		}
		return pl.record(root, "", u.path, u.pid)
	}
	chain := pathChain(m.MountPoint, u.path)
	if !u.whole {
		chain = chain[:len(chain)-1]
	}
	for _, p := range chain {
		if err := pl.record(root, m.MountPoint, p, u.pid); err != nil {
			return err
		}
	}
	return nil
}

// record adds pid to the entry of path, creating the entry from the
// path's lstat when it is new. On a tmpfs (mount set) only directories
// and regular files can be recreated; anything else is rejected. A path
// that no longer exists, such as an unlinked file that the dump saves as
// a deleted file, gets no entry.
func (pl *pathPlan) record(root, mount, path string, pid int32) error {
	e, ok := pl.entries[path]
	if !ok {
		var st unix.Stat_t
		err := unix.Lstat(root+path, &st)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return &os.PathError{Op: "lstat", Path: path, Err: err}
		}
		kind := st.Mode & unix.S_IFMT
		if mount != "" && kind != unix.S_IFDIR && kind != unix.S_IFREG {
			return fmt.Errorf("%s on the tmpfs at %s has mode %#o: only directories and regular files can be recreated",
				path, mount, st.Mode)
		}
		e = &snapshot.PathEntry{Path: path, Mount: mount, Mode: st.Mode, UID: st.Uid, GID: st.Gid,
			ModTime: time.Unix(st.Mtim.Unix()), Dev: st.Dev, Inode: st.Ino}
		if kind == unix.S_IFREG {
			e.Size = st.Size
		}
		pl.entries[path] = e
	}
	if !slices.Contains(e.PIDs, uint32(pid)) {
		e.PIDs = append(e.PIDs, uint32(pid))
	}
	return nil
}

// mountOf returns the mount that holds path: the one with the longest
// mount point above it, and of those the last in mountinfo order, which
// is the one on top.
func mountOf(mounts []procfs.Mount, path string) (procfs.Mount, bool) {
	var best procfs.Mount
	found := false
	for _, m := range mounts {
		if !below(path, m.MountPoint) {
			continue
		}
		if !found || len(m.MountPoint) >= len(best.MountPoint) {
			best, found = m, true
		}
	}
	return best, found
}

// below reports whether path is dir or lies below it.
func below(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func excludedPath(path string) bool {
	return slices.ContainsFunc(tmpfsExcluded, func(dir string) bool { return below(path, dir) })
}

// pathChain returns mount and every path from it down to path, which lies
// below mount: pathChain("/run", "/run/a/b") = [/run /run/a /run/a/b].
func pathChain(mount, path string) []string {
	chain := []string{mount}
	rest := strings.TrimPrefix(strings.TrimPrefix(path, mount), "/")
	if rest == "" {
		return chain
	}
	cur := strings.TrimSuffix(mount, "/")
	for _, name := range strings.Split(rest, "/") {
		cur += "/" + name
		chain = append(chain, cur)
	}
	return chain
}

// sorted returns the entries in path order, so that each directory comes
// before what it contains, and the disk entries after the tmpfs ones.
func (pl *pathPlan) sorted() []*snapshot.PathEntry {
	list := make([]*snapshot.PathEntry, 0, len(pl.entries))
	for _, e := range pl.entries {
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b *snapshot.PathEntry) int {
		if (a.Mount == "") != (b.Mount == "") {
			if a.Mount == "" {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Path, b.Path)
	})
	return list
}

// write writes every entry as path sections, with the content of the
// regular files on a tmpfs read from root (/proc/PID/root of a process
// that uses it). It returns the bytes of file content written.
func (pl *pathPlan) write(sw *snapshot.Writer, rootOf func(pid int32) string) (uint64, error) {
	var total uint64
	for _, e := range pl.sorted() {
		if e.Mount == "" || e.Mode&unix.S_IFMT != unix.S_IFREG {
			if err := sw.WritePath(e); err != nil {
				return total, fmt.Errorf("write path %s: %w", e.Path, err)
			}
			continue
		}
		n, err := writeFileContent(sw, e, rootOf(int32(e.PIDs[0]))+e.Path)
		total += n
		if err != nil {
			return total, fmt.Errorf("write path %s: %w", e.Path, err)
		}
	}
	return total, nil
}

// writeFileContent writes the entry of a regular file, read from name,
// then its content in sections of at most pathChunk bytes. Only the data
// extents are written (lseek SEEK_DATA and SEEK_HOLE), so a sparse file,
// such as a shared memory segment that ftruncate sized, stays sparse.
// The processes are frozen, so only other programs could change the file
// meanwhile. It returns the bytes of content written.
func writeFileContent(sw *snapshot.Writer, e *snapshot.PathEntry, name string) (uint64, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	first := *e
	first.Size = fi.Size()
	w := &contentWriter{sw: sw, path: e.Path, mount: e.Mount, first: &first}
	n, err := w.copyExtents(f, first.Size)
	if err == nil && w.first != nil {
		err = sw.WritePath(w.first) // no data at offset 0
	}
	return n, err
}

// contentWriter writes the sections of one file: the entry with its
// metadata first, then chunks of content at their offsets.
type contentWriter struct {
	sw          *snapshot.Writer
	path, mount string
	first       *snapshot.PathEntry // nil once written
	buf         []byte
}

// copyExtents writes every data extent of f below size.
func (w *contentWriter) copyExtents(f *os.File, size int64) (uint64, error) {
	fd := int(f.Fd())
	var total uint64
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole up to the end
		}
		if err != nil {
			return total, fmt.Errorf("seek data of %s from %d: %w", f.Name(), off, err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return total, fmt.Errorf("seek hole of %s from %d: %w", f.Name(), start, err)
		}
		end = min(end, size)
		n, err := w.copyRange(f, start, end)
		total += n
		if err != nil {
			return total, err
		}
		off = end
	}
	return total, nil
}

// copyRange writes the bytes of f from start to end in chunks.
func (w *contentWriter) copyRange(f *os.File, start, end int64) (uint64, error) {
	var total uint64
	for off := start; off < end; {
		n := min(end-off, pathChunk)
		if int64(len(w.buf)) < n {
			w.buf = make([]byte, n)
		}
		data := w.buf[:n]
		if _, err := f.ReadAt(data, off); err != nil {
			return total, fmt.Errorf("read %s at offset %d: %w", f.Name(), off, err)
		}
		if err := w.emit(off, data); err != nil {
			return total, err
		}
		total += uint64(n)
		off += n
	}
	return total, nil
}

// emit writes one chunk of content at off, after the entry itself.
func (w *contentWriter) emit(off int64, data []byte) error {
	if w.first != nil {
		e := w.first
		w.first = nil
		if off == 0 {
			e.Data = data
			return w.sw.WritePath(e)
		}
		if err := w.sw.WritePath(e); err != nil {
			return err
		}
	}
	return w.sw.WritePath(&snapshot.PathEntry{Path: w.path, Mount: w.mount, Offset: uint64(off), Data: data})
}

// writePaths writes the path sections of the tmpfs content and the /tmp
// paths that procs reference. It returns the bytes of file content.
func writePaths(sw *snapshot.Writer, procs []*process) (uint64, error) {
	files := map[uint64]*snapshot.File{}
	for _, f := range procs[0].files.files {
		files[f.ID] = f
	}
	plan, err := planPaths(procs, files)
	if err != nil {
		return 0, err
	}
	return plan.write(sw, func(pid int32) string { return fmt.Sprintf("%s/%d/root", procRoot, pid) })
}
