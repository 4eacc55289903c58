package kexec

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// SpillMode is the permission of an initramfs file that NewFileInitrd
// creates: it holds process memory, so only root may read it.
const SpillMode fs.FileMode = 0o600

// NewFileInitrd creates an empty initramfs in a new file in dir, mode
// SpillMode, for a machine whose memory cannot hold the initramfs while
// the kernel copies it.
//
// The file never has a name: it is opened with O_TMPFILE, so the kernel
// frees it when its last descriptor closes, even if the process dies by
// SIGKILL. On a filesystem without O_TMPFILE it is created with a random
// name and unlinked at once. Wipe overwrites it with zeros and flushes
// the zeros to the disk; call it before Close.
//
// Limitation: a process killed before Wipe leaves the pages that
// writeback had already written on the disk, unlinked but not zeroed,
// until the filesystem reuses the blocks, unless another process holds
// a PathFile descriptor and calls WipeFile. A filesystem that writes
// elsewhere on overwrite (btrfs, or flash under its translation layer)
// keeps the old blocks even after a wipe. Only an encrypted filesystem,
// or a tmpfs without swap, avoids both.
func NewFileInitrd(dir string) (*Initrd, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, uint32(SpillMode))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) {
		// EISDIR: a kernel or filesystem that does not know O_TMPFILE
		// takes it as O_DIRECTORY.
		return newUnlinkedInitrd(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("create initramfs file in %s: %w", dir, err)
	}
	return newFileInitrd(fd, dir)
}

// newUnlinkedInitrd creates the initramfs file under a random name in
// dir and unlinks it right away.
//
// Limitation: a SIGKILL between the create and the unlink, a window of
// two system calls, leaves a file ksu-initramfs-*.spill in dir.
func newUnlinkedInitrd(dir string) (*Initrd, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("create initramfs file name: %w", err)
	}
	path := filepath.Join(dir, "ksu-initramfs-"+hex.EncodeToString(suffix[:])+".spill")
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, uint32(SpillMode))
	if err != nil {
		return nil, fmt.Errorf("create initramfs file %s: %w", path, err)
	}
	if err := unix.Unlink(path); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("unlink initramfs file %s: %w", path, err)
	}
	return newFileInitrd(fd, dir)
}

// newFileInitrd wraps fd, an unnamed file in dir, and sets its mode to
// SpillMode, which the umask may have narrowed.
func newFileInitrd(fd int, dir string) (*Initrd, error) {
	if err := unix.Fchmod(fd, uint32(SpillMode)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("chmod initramfs file in %s: %w", dir, err)
	}
	return &Initrd{f: os.NewFile(uintptr(fd), dir), dir: dir}, nil
}

// Dir returns the directory of a file-backed initramfs, or "" for one in
// memory.
func (i *Initrd) Dir() string { return i.dir }

// Closed reports whether Close has run.
func (i *Initrd) Closed() bool { return i.f == nil }

// Wipe overwrites the initramfs with zeros and, for a file-backed one,
// flushes the zeros to the disk, so that the blocks keep no process
// memory. After Load, which leaves only a read-only descriptor, it
// reopens the file for writing: kexec_file_load allows writers again
// once it has copied the file.
func (i *Initrd) Wipe() error {
	if i.f == nil {
		return errors.New("wipe initramfs: already closed")
	}
	if err := wipe(i.f, i.size, i.dir != ""); err != nil {
		return fmt.Errorf("wipe initramfs %s: %w", i.describe(), err)
	}
	return nil
}

// PathFile returns a new O_PATH descriptor of a file-backed initramfs,
// for another process that wipes the file with WipeFile if this one dies
// before Wipe. It keeps the file allocated until it is closed, but it
// is no writer, so Load still accepts the file.
func (i *Initrd) PathFile() (*os.File, error) {
	if i.f == nil || i.dir == "" {
		return nil, errors.New("open initramfs by path: not an open file-backed initramfs")
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(i.f.Fd())), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open initramfs file in %s by path: %w", i.dir, err)
	}
	return os.NewFile(uintptr(fd), i.dir), nil
}

// WipeFile overwrites the whole file behind f, a descriptor from
// PathFile, with zeros and flushes them to the disk.
func WipeFile(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("wipe initramfs file in %s: %w", f.Name(), err)
	}
	if err := wipe(f, st.Size, true); err != nil {
		return fmt.Errorf("wipe initramfs file in %s: %w", f.Name(), err)
	}
	return nil
}

// wipe writes size zeros at the start of the file behind f through a
// new writable descriptor, and with flush calls fdatasync.
func wipe(f *os.File, size int64, flush bool) error {
	w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("reopen for writing: %w", pathCause(err))
	}
	defer w.Close()
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n := min(int64(len(zeros)), size-off)
		if _, err := w.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("write zeros at byte %d of %d: %w", off, size, pathCause(err))
		}
		off += n
	}
	if !flush {
		return nil
	}
	if err := unix.Fdatasync(int(w.Fd())); err != nil {
		return fmt.Errorf("flush zeros: %w", err)
	}
	return nil
}

// describe names the initramfs in errors.
func (i *Initrd) describe() string {
	if i.dir == "" {
		return "memfd"
	}
	return "file in " + i.dir
}

// pathCause returns the errno of a *fs.PathError, which names the file
// by a descriptor path, or err itself.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
