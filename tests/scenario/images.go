// Package scenario boots test guests from the images that ./build.sh
// setup builds and drives kernel updates inside them. The end-to-end
// tests and the demo share it, so both measure the same thing.
package scenario

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ksu-project/ksu/qemu"
)

// ErrNoImages reports that KSU_IMAGES is not set.
var ErrNoImages = errors.New("KSU_IMAGES not set; ./build.sh setup builds the images")

// Images locates the kernels, initramfs images and root disk that
// image/build.sh wrote to one directory.
type Images struct {
	Dir           string
	OldRelease    string
	NewRelease    string
	ExtraReleases []string
	MemoryMB      int
	CPUs          int
	// ExtraCmdline is appended to GuestCmdline for every guest booted
	// from these images, e.g. "lockdown=integrity". A kernel that ksu
	// update starts inherits it with the rest of the command line.
	ExtraCmdline string
}

// FindImages reads $KSU_IMAGES/images.env and checks that every file a
// guest needs is there.
func FindImages() (Images, error) {
	dir := os.Getenv("KSU_IMAGES")
	if dir == "" {
		return Images{}, ErrNoImages
	}
	env, err := readEnvFile(filepath.Join(dir, "images.env"))
	if err != nil {
		return Images{}, fmt.Errorf("read images: %w (rerun ./build.sh setup)", err)
	}
	im := Images{
		Dir:           dir,
		OldRelease:    env["OLD_RELEASE"],
		NewRelease:    env["NEW_RELEASE"],
		ExtraReleases: strings.Fields(env["EXTRA_RELEASES"]),
		MemoryMB:      atoiOr(env["GUEST_MEMORY_MB"], 2048),
		CPUs:          atoiOr(env["GUEST_CPUS"], 2),
	}
	if im.OldRelease == "" || im.NewRelease == "" {
		return Images{}, fmt.Errorf("read images: %s/images.env lacks OLD_RELEASE or NEW_RELEASE", dir)
	}
	for _, rel := range append([]string{im.OldRelease, im.NewRelease}, im.ExtraReleases...) {
		for _, f := range []string{im.Kernel(rel), im.Initrd(rel)} {
			if _, err := os.Stat(f); err != nil {
				return Images{}, fmt.Errorf("read images: %w (rerun ./build.sh setup)", err)
			}
		}
	}
	if _, err := os.Stat(im.RootFS()); err != nil {
		return Images{}, fmt.Errorf("read images: %w (rerun ./build.sh setup)", err)
	}
	return im, nil
}

// Kernel returns the path of the bzImage of release rel.
func (im Images) Kernel(rel string) string {
	return filepath.Join(im.Dir, "kernels", rel, "vmlinuz")
}

// Initrd returns the path of the first-boot initramfs of release rel:
// the ksu-init base and the modules QEMU's devices need.
func (im Images) Initrd(rel string) string {
	return filepath.Join(im.Dir, "kernels", rel, "initrd.cpio")
}

// RootFS returns the path of the raw ext4 guest disk.
func (im Images) RootFS() string {
	return filepath.Join(im.Dir, "rootfs.img")
}

// GuestCmdline is the kernel command line test guests boot with. The
// ksu.test parameter tells code in the guest that it runs under test.
const GuestCmdline = "root=/dev/vda rw console=ttyS0 panic=-1 ksu.test=1"

// GuestConfig returns the configuration of a guest that boots release
// rel from the root disk, keeping its files in workDir.
func (im Images) GuestConfig(rel, workDir string) qemu.Config {
	return qemu.Config{
		Kernel:   im.Kernel(rel),
		Initrd:   im.Initrd(rel),
		Disk:     im.RootFS(),
		Cmdline:  strings.TrimSpace(GuestCmdline + " " + im.ExtraCmdline),
		MemoryMB: im.MemoryMB,
		CPUs:     im.CPUs,
		WorkDir:  workDir,
	}
}

// readEnvFile reads KEY=VALUE lines, with optional double quotes around
// the value, as image/build.sh writes them.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		env[key] = strings.Trim(value, `"'`)
	}
	return env, sc.Err()
}

func atoiOr(s string, fallback int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return fallback
}
