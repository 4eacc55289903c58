package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/kexec"
)

// kexecPolicy is what the running kernel demands of an image that
// kexec_file_load loads.
type kexecPolicy struct {
	// Lockdown is the active lockdown mode: "none", "integrity",
	// "confidentiality", or "unknown" when the lockdown file cannot be
	// read.
	Lockdown string
	// SigForce is CONFIG_KEXEC_SIG_FORCE of the running kernel: "y",
	// "n" or "unknown".
	SigForce string
}

func readKexecPolicy() kexecPolicy {
	return kexecPolicy{
		Lockdown: readLockdown(lockdownFile),
		SigForce: readKconfig(runningConfig(), "CONFIG_KEXEC_SIG_FORCE"),
	}
}

// enforced reports whether kexec_file_load rejects an image whose
// signature it cannot verify. Lockdown integrity and confidentiality
// both forbid unverified kexec images, and KEXEC_SIG_FORCE does so
// without lockdown.
//
// Limitation: an IMA policy with an appraise rule for KEXEC_KERNEL_CHECK
// also rejects unsigned kernels, without lockdown or KEXEC_SIG_FORCE.
// ksu does not read the IMA policy, so there the rejection comes at
// phase load, after the freeze, and the processes resume. Reading
// /sys/kernel/security/ima/policy (CONFIG_IMA_READ_POLICY) would lift it.
func (p kexecPolicy) enforced() bool {
	return p.Lockdown == "integrity" || p.Lockdown == "confidentiality" || p.SigForce == "y"
}

// mayEnforce reports whether the policy enforces signatures or could,
// because the lockdown mode or the kernel config cannot be read.
func (p kexecPolicy) mayEnforce() bool {
	return p.enforced() || p.Lockdown == "unknown" || p.SigForce == "unknown"
}

// String names the policy in messages, e.g. "lockdown integrity".
func (p kexecPolicy) String() string {
	var parts []string
	if p.Lockdown != "none" {
		parts = append(parts, "lockdown "+p.Lockdown)
	}
	if p.SigForce != "n" {
		parts = append(parts, "KEXEC_SIG_FORCE "+p.SigForce)
	}
	if len(parts) == 0 {
		return "no kexec signature enforcement"
	}
	return strings.Join(parts, ", ")
}

// preloadKernel loads the new kernel with the initramfs assembled so
// far, the base and the modules without a snapshot, and unloads it
// again. It runs only when the running kernel enforces kexec signatures
// or may do so, so that a signature it rejects stops the update before
// any process is frozen. The later load with the snapshot then repeats
// the same signature check and passes it.
//
// Without enforcement a preload would find nothing that checkUpdate
// does not: ReadImage has checked the image format, and the load that
// matters carries the snapshot, so it alone can run out of memory.
func preloadKernel(o updateOptions, initrd *kexec.Initrd, log *switchLog) error {
	policy := readKexecPolicy()
	if !policy.mayEnforce() {
		return nil
	}
	cmdline, err := nextCmdline(o)
	if err != nil {
		return err
	}
	start := time.Now()
	progress.begin("check", "trial kexec_file_load under "+policy.String())
	err = kexec.TryLoad(o.kernel, initrd, cmdline)
	progress.clear()
	if err != nil {
		log.Printf("trial load under %s: kernel %s rejected in %s", policy, o.kernel, since(start))
		return fmt.Errorf("trial load under %s: %w%s", policy, err, describeSignature(o.kernel))
	}
	log.Printf("trial load under %s: kernel %s accepted, loaded and unloaded in %s",
		policy, o.kernel, since(start))
	return nil
}

// nextCmdline returns the new kernel's command line: the running one's
// with o's additions.
func nextCmdline(o updateOptions) (string, error) {
	running, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("read running kernel's command line: %w", err)
	}
	extra := strings.TrimSpace(o.appendArgs + " " + o.hold)
	if o.wipeFree {
		extra = withInitOnFree(string(running), extra)
	}
	return kexec.Cmdline(string(running), extra), nil
}
