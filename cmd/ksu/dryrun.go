package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/kexec"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// dryRun is the part of a dry run between the dump and the unload.
type dryRun struct {
	snapshot *os.File // the snapshot's cpio archive, in a memfd
	stats    dump.Stats
	load     time.Duration
}

// dumpDryRun dumps the trees rooted at roots into a memfd of its own,
// then copies the archive into initrd, so that the dry run can read the
// snapshot back after the load.
//
// N.B. the processes run on right after the dump, not after the load:
// only a dump that lets them run takes their TCP connections out of
// repair mode and lifts the packet drop. The pause that the dry run
// prints adds the load time it measured.
func dumpDryRun(initrd *kexec.Initrd, roots []int, journal ptrace.Journal, log *switchLog) (*dryRun, error) {
	fd, err := unix.MemfdCreate("ksu-dry-run", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create snapshot memfd: %w", os.NewSyscallError("memfd_create", err))
	}
	f := os.NewFile(uintptr(fd), "memfd:ksu-dry-run")
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	cw, err := snapshot.NewCPIOWriter(f, dir, 0)
	if err != nil {
		f.Close()
		return nil, err
	}
	opts := dump.Options{PIDs: roots, Exit: dump.ExitRunning, Producer: "ksu update --dry-run", Journal: journal}
	w := progress.trackDump(cw, &opts)
	stats, err := dump.Dump(w, opts)
	progress.clear()
	if err != nil {
		f.Close()
		return nil, err
	}
	traceDump(stats)
	hdr, err := cw.Finish(snapshot.ArchiveHeader{KernelRelease: runningRelease(), Size: stats.Size})
	if err != nil {
		f.Close()
		return nil, err
	}
	log.Printf("snapshot: %s, %s, %d bytes of memory, %d bytes compressed in %d parts",
		plural(stats.Processes, "process", "processes"), plural(stats.Threads, "thread", "threads"), stats.Pages, hdr.CompressedSize, hdr.Parts)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("rewind snapshot memfd: %w", err)
	}
	if _, err := io.Copy(initrd, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy snapshot into the initramfs: %w", err)
	}
	return &dryRun{snapshot: f, stats: stats}, nil
}

// finish checks that the snapshot decodes, unloads the kernel and prints
// how long the pause would have been. Filesystems were never frozen and
// the processes already run.
func (d *dryRun) finish(w io.Writer, log *switchLog) error {
	start := time.Now()
	var sections int
	var err error
	if d.snapshot != nil {
		sections, err = verifySnapshot(d.snapshot)
		err = errors.Join(err, d.snapshot.Close())
	}
	err = errors.Join(err, kexec.Unload())
	if err != nil {
		return fmt.Errorf("dry run, nothing was changed: %w", err)
	}
	log.Printf("dry run: snapshot decodes, %d sections, checked in %s; kernel unloaded", sections, since(start))
	pause := d.stats.Total + d.load
	fmt.Fprintf(w, "dry run: the processes would have been paused about %s (freeze %s, dump %s, load %s), "+
		"plus the filesystem sync, the kexec and the new kernel's boot up to the restore, which a dry run cannot measure\n",
		pause.Round(time.Millisecond), d.stats.Freeze.Round(time.Millisecond),
		(d.stats.Total - d.stats.Freeze).Round(time.Millisecond), d.load.Round(time.Millisecond))
	return nil
}

// verifySnapshot reads the snapshot archive in f to its end section, as
// ksu-init does, and returns the number of sections after Meta.
func verifySnapshot(f *os.File) (int, error) {
	fsys, err := indexNewc(f)
	if err != nil {
		return 0, err
	}
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	ar, err := snapshot.OpenCPIO(fsys, dir)
	if err != nil {
		return 0, err
	}
	defer ar.Close()
	r, err := snapshot.NewReader(ar, snapshot.ReaderOptions{Size: int64(ar.Header().Size)})
	if err != nil {
		return 0, fmt.Errorf("decode snapshot: %w", err)
	}
	defer r.Close()
	n := 0
	for ; n < maxSections; n++ {
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("decode snapshot section %d: %w", n, err)
		}
	}
	return n, fmt.Errorf("decode snapshot: more than %d sections", maxSections)
}

// maxSections bounds the read of a snapshot's sections.
const maxSections = 1 << 24

// newcFS is a read-only fs.FS over the regular files of a newc cpio
// archive in r, read in place.
type newcFS struct {
	r     io.ReaderAt
	files map[string]newcEntry
}

type newcEntry struct {
	name         string
	offset, size int64
}

// newcHeaderLen is the length of a newc header: the magic "070701" and
// 13 fields of 8 hexadecimal digits.
const newcHeaderLen = 110

// maxNewcEntries bounds the entries indexNewc reads.
const maxNewcEntries = 1 << 20

// indexNewc lists the regular files of the newc archive in f, up to the
// TRAILER!!! entry.
func indexNewc(f io.ReaderAt) (*newcFS, error) {
	fsys := &newcFS{r: f, files: map[string]newcEntry{}}
	var off int64
	for range maxNewcEntries {
		hdr := make([]byte, newcHeaderLen)
		if _, err := f.ReadAt(hdr, off); err != nil {
			return nil, fmt.Errorf("read cpio header at offset %d: %w", off, err)
		}
		if string(hdr[:6]) != "070701" {
			return nil, fmt.Errorf("read cpio header at offset %d: magic %q, want newc 070701", off, hdr[:6])
		}
		mode, err1 := newcField(hdr, 1)
		size, err2 := newcField(hdr, 6)
		nameLen, err3 := newcField(hdr, 11)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("read cpio header at offset %d: %w", off, err)
		}
		name := make([]byte, nameLen)
		if _, err := f.ReadAt(name, off+newcHeaderLen); err != nil {
			return nil, fmt.Errorf("read cpio name at offset %d: %w", off, err)
		}
		e := newcEntry{name: strings.TrimRight(string(name), "\x00"), size: size}
		if e.name == "TRAILER!!!" {
			return fsys, nil
		}
		e.offset = align4(off + newcHeaderLen + nameLen)
		if mode&unix.S_IFMT == unix.S_IFREG {
			fsys.files[e.name] = e
		}
		off = align4(e.offset + size)
	}
	return nil, fmt.Errorf("read cpio archive: more than %d entries", maxNewcEntries)
}

// newcField parses the i-th field after the magic.
func newcField(hdr []byte, i int) (int64, error) {
	s := string(hdr[6+8*i : 14+8*i])
	n, err := strconv.ParseInt(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid field %d %q", i, s)
	}
	return n, nil
}

func align4(n int64) int64 { return (n + 3) &^ 3 }

func (fsys *newcFS) Open(name string) (fs.File, error) {
	e, ok := fsys.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &newcFile{SectionReader: io.NewSectionReader(fsys.r, e.offset, e.size), entry: e}, nil
}

// newcFile is one open file of a newcFS.
type newcFile struct {
	*io.SectionReader
	entry newcEntry
}

func (f *newcFile) Stat() (fs.FileInfo, error) { return newcInfo(f.entry), nil }
func (f *newcFile) Close() error               { return nil }

// newcInfo describes a regular file of a newcFS.
type newcInfo newcEntry

func (i newcInfo) Name() string       { return i.name[strings.LastIndexByte(i.name, '/')+1:] }
func (i newcInfo) Size() int64        { return i.size }
func (i newcInfo) Mode() fs.FileMode  { return 0o444 }
func (i newcInfo) ModTime() time.Time { return time.Time{} }
func (i newcInfo) IsDir() bool        { return false }
func (i newcInfo) Sys() any           { return nil }
