package kexec

import "strings"

// Files of a rollback, which ksu update --rollback-on-failure puts into
// the new kernel's initramfs so that ksu-init can start the old kernel
// again when the restore fails there.
const (
	// RollbackDir holds the rollback files. It lies outside the
	// snapshot's directory, which ksu-init reads as one archive and wipes.
	RollbackDir = "/ksu-rollback"
	// RollbackKernel is the old kernel's bzImage.
	RollbackKernel = RollbackDir + "/vmlinuz"
	// RollbackInitrd is an initramfs for the old kernel: the ksu-init
	// base and the old kernel's modules, without a snapshot.
	RollbackInitrd = RollbackDir + "/initrd"
	// RollbackCmdline is the command line to start the old kernel with.
	RollbackCmdline = RollbackDir + "/cmdline"
	// RolledBackNote is the file that ksu-init adds to the old kernel's
	// initramfs when it rolls back. It holds the reason, as JSON, for
	// the report on the old kernel.
	RolledBackNote = "/ksu-rolled-back.json"
)

// DropParams returns cmdline without the parameters whose name is one of
// names: "KSU_FAILPOINT" drops KSU_FAILPOINT=... and a bare KSU_FAILPOINT.
// Quoted values stay whole.
func DropParams(cmdline string, names ...string) string {
	var kept []string
	for _, param := range splitParams(cmdline) {
		name, _, _ := strings.Cut(param, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			kept = append(kept, param)
		}
	}
	return strings.Join(kept, " ")
}
