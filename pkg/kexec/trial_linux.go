package kexec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// TryLoad loads the kernel at kernelPath with initrd and cmdline as Load
// does, unloads it again, and leaves initrd writable at its end, so that
// more archives can follow before the real Load. It finds, before
// anything is frozen, a kernel that the running kernel's signature
// policy rejects: the error is then a *LoadError.
//
// N.B. Like Load, it replaces a kexec kernel that another program loaded
// before, and its Unload leaves none loaded. A crash kernel
// (kexec_file_load with KEXEC_FILE_ON_CRASH) is separate and stays.
func TryLoad(kernelPath string, initrd *Initrd, cmdline string) error {
	err := Load(kernelPath, initrd, cmdline)
	if err == nil {
		err = Unload()
	}
	return errors.Join(err, initrd.reopenWritable())
}

// reopenWritable replaces the initramfs's descriptor, read-only after
// Load, with a writable one at the offset of the next Write.
// kexec_file_load allows writers again once it has copied the file.
func (i *Initrd) reopenWritable() error {
	if i.f == nil {
		return errors.New("reopen initramfs for writing: already closed")
	}
	w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(i.f.Fd())), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("reopen initramfs for writing: %w", err)
	}
	if _, err := w.Seek(i.pos, io.SeekStart); err != nil {
		w.Close()
		return fmt.Errorf("reopen initramfs for writing: seek to %d: %w", i.pos, err)
	}
	i.f.Close()
	i.f = w
	return nil
}
