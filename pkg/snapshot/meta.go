package snapshot

import "time"

// Meta is the snapshot-wide metadata. It is the first section of every
// snapshot, so a reader can check the source machine before it reads any
// process.
type Meta struct {
	KernelRelease string        // release of the kernel that took the snapshot, as uname -r prints it
	BootID        string        // /proc/sys/kernel/random/boot_id of that boot
	Machine       string        // architecture, as uname -m prints it ("x86_64")
	PageSize      uint32        // page size in bytes; page ranges are multiples of it
	Monotonic     time.Duration // CLOCK_MONOTONIC at the dump
	Boottime      time.Duration // CLOCK_BOOTTIME at the dump
	Time          time.Time     // CLOCK_REALTIME at the dump
	Hostname      string        // UTS host name of the dumped processes
	Producer      string        // name and version of the program that wrote the snapshot
	// VDSO is the [vdso] mapping of the kernel that took the snapshot,
	// byte for byte (every process of one boot maps the same image).
	// The restore compares it with the running kernel's vDSO. It is
	// empty when that kernel maps no vDSO.
	VDSO []byte
}

// end is the payload of the last section. Its counts let a reader tell a
// complete stream from one cut at a section boundary.
type end struct {
	Sections  uint64 // sections before the end section, Meta included
	PageBytes uint64 // page data bytes in all page sections
}
