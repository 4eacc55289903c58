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
kernel's copy that kexec_file_load makes. Without --spill, a snapshot
that does not fit in the memory of ksu's cgroup either fails the update
with "cannot allocate memory" or makes the OOM killer kill ksu. In both
cases the processes resume, and after a kill the resume guard writes
the phase and the cause to the kernel log.

The spill file has mode 0600 and no name in DIR, so no other user can
open it, and the kernel frees it even if ksu is killed. ksu overwrites
it with zeros and flushes the zeros to the disk before it closes it:
right after the kernel load, and after any failure. If ksu is killed,
its resume guard does so. The spill lengthens
the pause of the preserved processes by the snapshot's write to DIR,
the kernel's read of the whole file, and the zeroing of the whole file
with its flush. DIR needs free space for the whole initramfs. When it
fills up, the update fails with "no space left on device" and the
processes resume. A dry run still keeps one more copy of the snapshot
in memory, to read it back after the load. Prefer a DIR on an encrypted
filesystem: a crash, or a kill of both ksu and its guard, leaves the
file unzeroed, and on a filesystem that writes elsewhere on overwrite
(btrfs, or flash under its translation layer) the old blocks keep the
process memory until reused.
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
// Wipe reopens the initramfs for writing, so it works after the kernel
// load too, and the zeros of a file-backed one reach the disk.
func discardInitrd(initrd *kexec.Initrd, log *switchLog) {
	if initrd.Closed() {
		return
	}
	size := initrd.Size()
	err := initrd.Wipe()
	initrd.Close()
	switch {
	case err != nil && initrd.Dir() == "":
		log.Printf("warning: %v; its pages go back to the kernel unzeroed", err)
	case err != nil:
		// Limitation: the file is freed when the resume guard exits,
		// but the blocks that writeback wrote keep their contents until
		// the filesystem reuses them.
		log.Printf("warning: %v; the freed blocks of the initramfs file in %s keep process memory until reused",
			err, initrd.Dir())
	case initrd.Dir() != "":
		log.Printf("spill: zeroed and freed the initramfs file in %s, %s", initrd.Dir(), formatBytes(uint64(size)))
	}
}
