package main

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/kexec"
)

// The snapshot holds the memory of the preserved processes, which may
// contain keys and passwords. ksu keeps it out of swap and leaves no copy
// behind after a failed or rehearsed switch, as far as it can reach:
//
//   - lockMemory locks ksu's own pages (the dump and compression buffers)
//     in RAM;
//   - wipeInitrd overwrites the in-memory initramfs, which holds the
//     compressed snapshot, with zeros before it is freed;
//   - with --wipe-free-memory, withInitOnFree has the new kernel zero
//     all free memory at boot and every page it frees, which covers the
//     old kernel's RAM and ksu-init's copies (see cmd/ksu-init). It is
//     not the default because the clearing at boot lengthens the pause
//     in proportion to the machine's memory.
//
// Limitation: the initramfs memfd is shared memory, which mlockall does
// not lock, so under memory pressure the compressed snapshot can reach
// swap before the kexec. Its memfd also becomes read-only at the kernel
// load, so after a failure past that point wipeInitrd cannot zero it and
// the freed pages keep their contents until reused (unless the running
// kernel has init_on_free=1). Locking and wiping through a mapping of the
// memfd inside pkg/kexec would lift both.

// initOnFreeParam makes a kernel zero the pages it frees (Linux 5.3+).
const initOnFreeParam = "init_on_free=1"

// withInitOnFree returns extra with init_on_free=1 added, unless the
// running kernel's command line or extra already sets init_on_free.
func withInitOnFree(running, extra string) string {
	for _, param := range strings.Fields(running + " " + extra) {
		if strings.HasPrefix(param, "init_on_free=") {
			return extra
		}
	}
	return strings.TrimSpace(extra + " " + initOnFreeParam)
}

// lockMemory locks the pages ksu has and will have in RAM, each when it
// is first touched (MCL_ONFAULT), so that the snapshot never reaches
// swap. A failure is logged as a warning: the switch works without it.
func lockMemory(log *switchLog) {
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		log.Printf("warning: mlockall: %v; the snapshot buffers may be swapped out", err)
	}
}

// wipeInitrd overwrites initrd with zeros while it is still writable,
// that is before the kernel load. The caller closes it afterwards.
func wipeInitrd(initrd *kexec.Initrd, log *switchLog) {
	size := initrd.Size()
	if _, err := initrd.Seek(0, 0); err != nil {
		log.Printf("warning: initramfs not wiped: %v", err)
		return
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n := min(int64(len(zeros)), size-off)
		if _, err := initrd.Write(zeros[:n]); errors.Is(err, unix.EBADF) {
			log.Printf("initramfs memfd not zeroed: it is read-only since the kernel load; its pages go back to the kernel unzeroed when ksu exits")
			return
		} else if err != nil {
			log.Printf("warning: initramfs wiped up to byte %d of %d: %v", off, size, err)
			return
		}
		off += n
	}
}
