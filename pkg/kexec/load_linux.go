package kexec

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Initrd is an initramfs being assembled in anonymous memory (a memfd)
// or, from NewFileInitrd, in an unnamed file. Write newc archives to it
// in order; Load hands it to the kernel.
type Initrd struct {
	f    *os.File
	dir  string // directory of the unnamed file; empty for a memfd
	pos  int64  // offset of the next Write
	size int64
}

// NewInitrd creates an empty in-memory initramfs.
func NewInitrd() (*Initrd, error) {
	fd, err := unix.MemfdCreate("ksu-initramfs", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create initramfs memfd: %w", os.NewSyscallError("memfd_create", err))
	}
	return &Initrd{f: os.NewFile(uintptr(fd), "memfd:ksu-initramfs")}, nil
}

// Write writes p at the current offset, the end unless Seek moved it.
func (i *Initrd) Write(p []byte) (int, error) {
	n, err := i.f.Write(p)
	i.pos += int64(n)
	i.size = max(i.size, i.pos)
	if err != nil && i.dir != "" {
		return n, fmt.Errorf("write initramfs file in %s: %w", i.dir, pathCause(err))
	}
	if err != nil {
		return n, fmt.Errorf("write initramfs: %w", err)
	}
	return n, nil
}

// Seek sets the offset of the next Write, so that a writer such as
// snapshot.CPIOWriter can rewrite a header it wrote earlier.
func (i *Initrd) Seek(offset int64, whence int) (int64, error) {
	pos, err := i.f.Seek(offset, whence)
	if err != nil {
		return pos, fmt.Errorf("seek initramfs: %w", err)
	}
	i.pos = pos
	return pos, nil
}

// Size returns the size of the initramfs so far.
func (i *Initrd) Size() int64 { return i.size }

// Close frees the initramfs memory unless the kernel holds a loaded copy.
func (i *Initrd) Close() error {
	if i.f == nil {
		return nil
	}
	err := i.f.Close()
	i.f = nil
	return err
}

// readOnly returns a new read-only file description of the memfd and
// closes the writable one. kexec_file_load denies write access to the
// files it reads, and fails with ETXTBSY while any writer remains.
func (i *Initrd) readOnly() (*os.File, error) {
	ro, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(i.f.Fd())))
	if err != nil {
		return nil, fmt.Errorf("reopen initramfs read-only: %w", err)
	}
	i.f.Close()
	i.f = ro
	return ro, nil
}

// Load loads the kernel image at kernelPath with initrd and cmdline as the
// next kernel to run on Exec. After Load, initrd can no longer be written.
//
// Errors name the likely cause: EKEYREJECTED and EPERM mean the kernel's
// signature policy (lockdown, or CONFIG_KEXEC_SIG_FORCE) rejected an image
// it could not verify; ENOEXEC means the file is not a loadable kernel.
func Load(kernelPath string, initrd *Initrd, cmdline string) error {
	kernel, err := os.Open(kernelPath)
	if err != nil {
		return fmt.Errorf("load kernel: %w", err)
	}
	defer kernel.Close()

	ro, err := initrd.readOnly()
	if err != nil {
		return err
	}

	err = unix.KexecFileLoad(int(kernel.Fd()), int(ro.Fd()), cmdline, 0)
	if err != nil {
		return &LoadError{Kernel: kernelPath, Err: os.NewSyscallError("kexec_file_load", err)}
	}
	return nil
}

// Unload discards a kernel loaded by Load.
func Unload() error {
	err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
	if err != nil {
		return fmt.Errorf("unload kexec kernel: %w", os.NewSyscallError("kexec_file_load", err))
	}
	return nil
}

// LoadError is a failed kexec_file_load, with a hint at the usual cause.
type LoadError struct {
	Kernel string
	Err    error
}

func (e *LoadError) Error() string {
	msg := fmt.Sprintf("load kernel %s: %v", e.Kernel, e.Err)
	if hint := e.Hint(); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

func (e *LoadError) Unwrap() error { return e.Err }

// Hint explains the errno in the terms an operator acts on.
func (e *LoadError) Hint() string {
	switch {
	case errors.Is(e.Err, unix.EKEYREJECTED), errors.Is(e.Err, unix.EPERM):
		return "signature verification failed: the kernel's lockdown or kexec signature policy " +
			"accepts only images signed with a trusted key"
	case errors.Is(e.Err, unix.ENOEXEC):
		return "the file is not a kernel image this kernel can load"
	case errors.Is(e.Err, unix.EBUSY):
		return "another kexec kernel is loaded or being loaded"
	case errors.Is(e.Err, unix.ENOMEM):
		return "not enough memory for the kernel and initramfs"
	case errors.Is(e.Err, unix.ENOSYS):
		return "this kernel was built without CONFIG_KEXEC_FILE"
	}
	return ""
}
