// Package kexec loads a new kernel with its initramfs and starts it.
//
// Loading uses kexec_file_load(2), the only kexec call that lockdown
// permits: the kernel verifies the image's signature itself when the
// policy asks for it. The initramfs is assembled in a memfd, so it never
// touches a disk, or, when memory is short, in an unnamed file that
// NewFileInitrd creates. Either is handed to the kernel through a
// read-only file description, because kexec_file_load rejects a file
// that is still open for writing (ETXTBSY).
//
// A typical switch:
//
//	rel, err := kexec.ReadRelease("/boot/vmlinuz-6.12.117+deb12-cloud-amd64")
//	initrd, err := kexec.NewInitrd()
//	io.Copy(initrd, base)  // more archives may follow
//	err = kexec.Load(kernelPath, initrd, kexec.Cmdline(running, extra))
//	err = kexec.Exec(logf) // syncs, freezes filesystems, and does not return
//
// Until Exec runs, Unload undoes a Load and nothing has changed.
package kexec
