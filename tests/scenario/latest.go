package scenario

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ksu-project/ksu/qemu"
)

// KernelDeb returns the guest path of the old release's kernel package,
// which image/build.sh copies onto the guest disk for tests that install
// it with dpkg as an administrator would.
func KernelDeb(im Images) (string, error) {
	env, err := readEnvFile(filepath.Join(im.Dir, "images.env"))
	if err != nil {
		return "", fmt.Errorf("read images: %w", err)
	}
	if env["OLD_KERNEL_DEB"] == "" {
		return "", fmt.Errorf("read images: %s/images.env lacks OLD_KERNEL_DEB (rerun ./build.sh setup)", im.Dir)
	}
	return env["OLD_KERNEL_DEB"], nil
}

// RemoveKernels deletes the /boot files and the modules of each release
// from the guest, as purging its package would, so that the guest holds
// only the kernels a test installs itself. The image installs kernels
// without dpkg, so no package database entry needs removing.
func RemoveKernels(ctx context.Context, g *qemu.Guest, releases ...string) error {
	for _, rel := range releases {
		argv := []string{"rm", "-rf", "/lib/modules/" + rel}
		for _, prefix := range []string{"vmlinuz", "config", "System.map", "initrd.img"} {
			argv = append(argv, "/boot/"+prefix+"-"+rel)
		}
		res, err := g.Run(ctx, argv...)
		if err != nil {
			return fmt.Errorf("remove kernel %s: %w", rel, err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("remove kernel %s: rm exit %d: %s", rel, res.ExitCode, res.Stderr)
		}
	}
	return nil
}

// DpkgResult is the outcome of one dpkg command in the guest.
type DpkgResult struct {
	Output   string // dpkg's stdout and stderr, interleaved
	ExitCode int
	Took     time.Duration
}

// Dpkg runs dpkg with args in the guest, for at most d. The maintainer
// scripts of a kernel package run depmod and the hooks in
// /etc/kernel/postinst.d, which build its initramfs.
func Dpkg(ctx context.Context, g *qemu.Guest, d time.Duration, args ...string) (DpkgResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	res, err := g.Run(ctx, append([]string{"sh", "-c", `exec dpkg "$@" 2>&1`, "dpkg"}, args...)...)
	if err != nil {
		return DpkgResult{}, fmt.Errorf("dpkg %s: %w", strings.Join(args, " "), err)
	}
	return DpkgResult{Output: string(res.Stdout), ExitCode: res.ExitCode, Took: time.Since(start)}, nil
}

// UpdateLatest runs "ksu update --latest --yes" with extra arguments
// args in the guest and waits until the guest agent responds on the new
// kernel. ksu picks the kernel itself, and want, the release the caller
// expects, appears only in error messages.
func UpdateLatest(ctx context.Context, g *qemu.Guest, want string, args ...string) (Switch, error) {
	argv := append([]string{"/usr/sbin/ksu", "update", "--latest", "--yes"}, args...)
	return runUpdate(ctx, g, want, argv)
}
