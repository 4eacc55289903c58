// Package initramfs assembles the initramfs that ksu-init boots from: the
// ksu-init base (built once, at build time, by the base subpackage), an
// archive of the kernel modules the new kernel needs to reach its root
// filesystem, and the snapshot archive. The kernel unpacks concatenated
// newc archives in order, so each part is written separately and joined
// with Concat.
//
// This package runs where ksu update runs, which has no Go toolchain, so
// it only reads module indexes and writes archives:
//
//	idx, err := initramfs.LoadIndex("/lib/modules/" + release)
//	aliases, err := initramfs.DeviceModaliases("/sys")
//	mods, err := idx.Resolve([]string{"virtio_blk", "ext4"}, aliases)
//	err = initramfs.WriteModulesArchive(w, release, mods...)
//
// Module resolution follows modprobe: names and aliases come from
// modules.dep, modules.alias, modules.softdep and modules.builtin (all
// written by depmod), alias patterns are shell globs, and built-in modules
// are skipped.
package initramfs

// SnapshotDir is the initramfs directory that holds the files of the
// snapshot archive (pkg/snapshot's WriteCPIO and NewCPIOWriter take it
// without the leading slash, as "ksu"). ksu-init restores when the
// archive's header file, snapshot.HeaderName, is there.
const SnapshotDir = "/ksu"

// NewRootDir is the directory of the initramfs where ksu-init mounts the
// real root filesystem before switching to it.
const NewRootDir = "/newroot"
