package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/kexec"
)

// rollbackOptions are the flags of "ksu update" that keep the running
// kernel ready for ksu-init to return to.
type rollbackOptions struct {
	enabled bool
	kernel  string // the running kernel's bzImage; empty means /boot/vmlinuz-RELEASE
}

func (r *rollbackOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&r.enabled, "rollback-on-failure", false,
		"return to the running kernel with the same snapshot if the restore fails on the new one")
	fs.StringVar(&r.kernel, "rollback-kernel", "",
		"the running kernel's bzImage for --rollback-on-failure (default /boot/vmlinuz-$(uname -r))")
}

// rollbackHelp describes --rollback-on-failure in the usage of ksu update.
const rollbackHelp = `With --rollback-on-failure, the new kernel's initramfs also carries the
running kernel, an initramfs for it (the ksu-init base and the running
kernel's modules) and the running command line, less KSU_FAILPOINT. If
a process tree fails to restore on the new kernel while no restored
process has run and no TCP connection has left repair mode, ksu-init
abandons every tree and kexecs into the old kernel with the same
snapshot. That kernel's ksu-init restores the processes (once: it has
no rollback of its own), and its /run/ksu/report.json has a "rollback"
entry that names the new kernel and the reason. The cost is memory: the old bzImage and the
second initramfs stay in the new kernel's RAM until the handoff (ksu
update logs both sizes; 13.5 MiB and 8.3 MiB for Debian's 6.1 cloud
kernel), and a rollback copies the snapshot once more into the old
kernel's initramfs.
`

// appendRollback writes the rollback files for the running kernel into
// w, a newc archive under kexec.RollbackDir, when --rollback-on-failure
// is set. It runs before the freeze, so a failure changes nothing.
func appendRollback(w io.Writer, o updateOptions, log *switchLog) error {
	if !o.rollback.enabled {
		return nil
	}
	start := time.Now()
	release, err := runningKernelRelease()
	if err != nil {
		return fmt.Errorf("prepare rollback: %w", err)
	}
	kernelPath := o.rollback.kernel
	if kernelPath == "" {
		kernelPath = "/boot/vmlinuz-" + release
	}
	if err := checkRollbackKernel(kernelPath, release); err != nil {
		return err
	}

	kernel, err := os.ReadFile(kernelPath)
	if err != nil {
		return fmt.Errorf("prepare rollback: read the running kernel's bzImage: %w", err)
	}
	initrd, err := rollbackInitrd(o.base, filepath.Join(o.modulesDir, release), release)
	if err != nil {
		return fmt.Errorf("prepare rollback: %w", err)
	}

	running, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("prepare rollback: read running kernel's command line: %w", err)
	}
	cmdline := rollbackCmdline(string(running), o.hold)
	if err := writeRollbackArchive(w, kernel, initrd, cmdline); err != nil {
		return fmt.Errorf("prepare rollback: %w", err)
	}
	log.Printf("rollback: kernel %s (%d KiB) and its initramfs (%d KiB) in %s, command line: %s",
		release, len(kernel)>>10, len(initrd)>>10, since(start), cmdline)
	return nil
}

// checkRollbackKernel checks that path is a bzImage of release, so that
// a rollback starts the kernel whose modules it carries.
func checkRollbackKernel(path, release string) error {
	img, err := kexec.ReadImage(path)
	if err != nil {
		return fmt.Errorf("prepare rollback: %w (pass --rollback-kernel)", err)
	}
	if img.Release != release {
		return fmt.Errorf("prepare rollback: %s is kernel %s, but the running kernel is %s (pass --rollback-kernel)",
			path, img.Release, release)
	}
	return nil
}

// rollbackCmdline returns the command line for the old kernel: the
// running one as the new kernel gets it, with the update's hold
// parameter, but without a failpoint, which was meant for one run only.
func rollbackCmdline(running, hold string) string {
	cmdline := kexec.Cmdline(running, hold)
	return kexec.DropParams(cmdline, failpoint.EnvVar)
}

// rollbackInitrd returns an initramfs for the running kernel release:
// the ksu-init base followed by the kernel's modules from modulesDir.
func rollbackInitrd(base, modulesDir, release string) ([]byte, error) {
	var buf bytes.Buffer
	f, err := os.Open(base)
	if err != nil {
		return nil, fmt.Errorf("read ksu-init base: %w", err)
	}
	defer f.Close()
	if err := initramfs.Concat(&buf, f); err != nil {
		return nil, err
	}
	if _, err := appendModules(&buf, modulesDir, release); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeRollbackArchive writes a newc archive of the rollback files to w.
func writeRollbackArchive(w io.Writer, kernel, initrd []byte, cmdline string) error {
	dir := strings.TrimPrefix(kexec.RollbackDir, "/")
	records := []cpio.Record{
		cpio.Directory(dir, 0o700),
		cpio.StaticRecord(kernel, cpio.Info{Name: strings.TrimPrefix(kexec.RollbackKernel, "/"), Mode: cpio.S_IFREG | 0o600}),
		cpio.StaticRecord(initrd, cpio.Info{Name: strings.TrimPrefix(kexec.RollbackInitrd, "/"), Mode: cpio.S_IFREG | 0o600}),
		cpio.StaticFile(strings.TrimPrefix(kexec.RollbackCmdline, "/"), cmdline+"\n", 0o600),
	}
	rw := cpio.Newc.Writer(w)
	if err := cpio.WriteRecords(rw, records); err != nil {
		return fmt.Errorf("write rollback archive: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("write rollback archive trailer: %w", err)
	}
	return nil
}

// runningKernelRelease returns the release of the running kernel.
func runningKernelRelease() (string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", fmt.Errorf("read running kernel release: %w", err)
	}
	return unix.ByteSliceToString(uts.Release[:]), nil
}
