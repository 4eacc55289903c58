package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/kexec"
)

// kernelCheck is the result of "ksu check" for the new kernel.
type kernelCheck struct {
	Path     string   `json:"path"`
	Release  string   `json:"release"`
	Loadable bool     `json:"loadable"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	// Lockdown is the active mode of /sys/kernel/security/lockdown:
	// "none", "integrity", "confidentiality", or "unknown".
	Lockdown string `json:"lockdown"`
	// SigForce is CONFIG_KEXEC_SIG_FORCE of the running kernel: "y",
	// "n" or "unknown".
	SigForce string `json:"kexec_sig_force"`
	// Signature is what the image's Authenticode certificate table
	// shows, e.g. "the image carries no Authenticode signature (...)".
	Signature string `json:"signature"`
	// Signed is whether the image has a certificate table at all.
	Signed bool `json:"signed"`
	// BootDefault is "yes" when the bootloader starts this kernel by
	// default, "no" when it starts DefaultKernel, "unknown" otherwise.
	BootDefault   string `json:"boot_default"`
	DefaultKernel string `json:"default_kernel,omitempty"`
}

// Where checkKernel looks; variables so that tests can point them at a
// temporary tree.
var (
	lockdownFile  = "/sys/kernel/security/lockdown"
	bootDir       = "/boot"
	bootLinks     = []string{"/boot/vmlinuz", "/vmlinuz"}
	grubConfig    = "/boot/grub/grub.cfg"
	runningConfig = func() string { return filepath.Join(bootDir, "config-"+runningRelease()) }
)

// checkKernel checks what kexec_file_load and the initramfs need, the
// signature policy, and whether the bootloader agrees with the choice.
func checkKernel(o checkOptions) kernelCheck {
	k := kernelCheck{Path: o.kernel, Problems: []string{}, Warnings: []string{}}
	img, err := kexec.ReadImage(o.kernel)
	if err != nil {
		k.Problems = append(k.Problems, err.Error())
	}
	k.Release = img.Release
	if k.Release != "" {
		if err := checkModuleIndex(o.modulesDir, k.Release); err != nil {
			k.Problems = append(k.Problems, err.Error())
		}
	}
	if _, err := os.Stat(o.base); err != nil {
		k.Problems = append(k.Problems, fmt.Sprintf("ksu-init base initramfs: %v", err))
	}

	policy := readKexecPolicy()
	k.Lockdown, k.SigForce = policy.Lockdown, policy.SigForce
	sig, err := kexec.ReadSignature(o.kernel)
	checkSignature(&k, sig, err, policy)
	if readKconfig(runningConfig(), "CONFIG_KEXEC_FILE") == "n" {
		k.Problems = append(k.Problems, "the running kernel was built without CONFIG_KEXEC_FILE")
	}

	k.BootDefault, k.DefaultKernel = bootDefault(o.kernel)
	if k.BootDefault == "no" {
		k.Warnings = append(k.Warnings, fmt.Sprintf("the bootloader starts %s by default, "+
			"so the next reboot leaves kernel %s", k.DefaultKernel, k.Release))
	}
	k.Loadable = len(k.Problems) == 0
	return k
}

// readLockdown returns the active lockdown mode, the bracketed word of
// the lockdown file, e.g. "integrity" in "none [integrity]
// confidentiality".
func readLockdown(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	for _, w := range strings.Fields(string(b)) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]")
		}
	}
	return "unknown"
}

// readKconfig returns the value of option in a kernel config file: "y",
// "m", another value, "n" when it is not set, "unknown" when the file
// cannot be read.
func readKconfig(path, option string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, option+"="); ok {
			return v
		}
		if line == "# "+option+" is not set" {
			return "n"
		}
	}
	if sc.Err() != nil {
		return "unknown"
	}
	return "n"
}

// bootDefault compares kernel with the kernel the bootloader starts by
// default: the target of a /boot/vmlinuz or /vmlinuz link, else the
// first menu entry of grub.cfg when its default is entry 0.
func bootDefault(kernel string) (verdict, def string) {
	for _, link := range bootLinks {
		if target, err := filepath.EvalSymlinks(link); err == nil {
			return compareDefault(kernel, target)
		}
	}
	cfg, err := os.ReadFile(grubConfig)
	if err != nil {
		return "unknown", ""
	}
	def = grubDefaultKernel(string(cfg))
	if def == "" {
		return "unknown", ""
	}
	return compareDefault(kernel, filepath.Join(bootDir, filepath.Base(def)))
}

func compareDefault(kernel, def string) (string, string) {
	if sameFile(kernel, def) {
		return "yes", def
	}
	return "no", def
}

// grubDefaultKernel returns the kernel path of grub.cfg's first menu
// entry when the config starts that entry by default (default "0" or
// unset), else "". A saved or named default returns "".
func grubDefaultKernel(cfg string) string {
	inEntry := false
	for line := range strings.Lines(cfg) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "set" && len(f) > 1 && strings.HasPrefix(f[1], "default="):
			if v := strings.Trim(strings.TrimPrefix(f[1], "default="), `"'`); v != "0" {
				return ""
			}
		case f[0] == "menuentry":
			inEntry = true
		case inEntry && f[0] == "linux" && len(f) > 1:
			return f[1]
		}
	}
	return ""
}

// runningRelease returns the running kernel's release, or "" when uname
// fails.
func runningRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}
