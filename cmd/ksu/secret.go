package main

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The snapshot holds the memory of the preserved processes, which may
// contain keys and passwords. ksu keeps it out of swap and leaves no copy
// behind after a failed or rehearsed switch, as far as it can reach:
//
//   - lockMemory locks ksu's own pages (the dump and compression buffers)
//     in RAM;
//   - discardInitrd overwrites the initramfs, which holds the compressed
//     snapshot, with zeros before it is freed: a memfd, or with --spill
//     an unnamed 0600 file whose zeros are flushed to the disk;
//   - with --wipe-free-memory, withInitOnFree has the new kernel zero
//     all free memory at boot and every page it frees, which covers the
//     old kernel's RAM and ksu-init's copies (see cmd/ksu-init). It is
//     not the default because the clearing at boot lengthens the pause
//     in proportion to the machine's memory.
//
// Limitation: the initramfs memfd is shared memory, which mlockall does
// not lock, so under memory pressure the compressed snapshot can reach
// swap before the kexec. Locking it through a mapping of the memfd
// inside pkg/kexec would lift that.

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
