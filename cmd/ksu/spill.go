package main

import (
	"fmt"
	"os"

	"github.com/ksu-project/ksu/pkg/kexec"
)

// spillHelp documents --spill in "ksu update --help" and the man page.
const spillHelp = `With --spill DIR, the initramfs, and so the compressed snapshot, is
written to a file in DIR instead of memory, for a machine whose memory
cannot hold the snapshot twice: once in the initramfs and once in the
kernel's copy that kexec_file_load makes. The file has mode 0600 and no
name, so no other process can open it and the kernel frees it even if
ksu is killed. ksu overwrites it with zeros and flushes the zeros to the
disk before it closes the file: right after the kernel load, and after
any failure. The spill costs a write of the initramfs to DIR, a read,
and a second write of the same size for the zeros, all within the pause
of the preserved processes. DIR needs free space for the whole
initramfs; when it fills up, the update fails and the processes resume.
Prefer a DIR on tmpfs with swap, or on an encrypted filesystem: a
killed ksu does not zero the file, and on a filesystem that writes
elsewhere on overwrite (btrfs, or flash under its translation layer) the
old blocks keep the process memory until reused.
`

// newInitrd creates the initramfs of an update in memory or, with
// --spill, in an unnamed file in o.spill.
func newInitrd(o updateOptions) (*kexec.Initrd, error) {
	if o.spill == "" {
		return kexec.NewInitrd()
	}
	st, err := os.Stat(o.spill)
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w (--spill takes an existing directory)", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("spill directory %s: not a directory", o.spill)
	}
	return kexec.NewFileInitrd(o.spill)
}

// discardInitrd wipes initrd and closes it, unless it is already closed.
// A file-backed initramfs is wiped even after the kernel load, and its
// zeros reach the disk.
func discardInitrd(initrd *kexec.Initrd, log *switchLog) {
	if initrd.Closed() {
		return
	}
	if initrd.Dir() == "" {
		wipeInitrd(initrd, log)
		initrd.Close()
		return
	}
	size := initrd.Size()
	err := initrd.Wipe()
	initrd.Close()
	if err != nil {
		// Limitation: the file is freed at Close, but the blocks that
		// writeback wrote keep their contents until the filesystem
		// reuses them.
		log.Printf("warning: %v; the freed blocks of the initramfs file in %s keep process memory until reused",
			err, initrd.Dir())
		return
	}
	log.Printf("spill: zeroed and freed the initramfs file in %s, %s", initrd.Dir(), formatBytes(uint64(size)))
}
