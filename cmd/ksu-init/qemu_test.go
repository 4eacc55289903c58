package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/initramfs/base"
	"github.com/ksu-project/ksu/pkg/klog/klogtest"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/qemu"
)

// kernelsEnv names the variable that lists the kernels to boot: unpacked
// Debian kernel packages (dpkg-deb -x), each indexed with depmod.
const kernelsEnv = "KSU_INIT_TEST_KERNELS"

// The root disk's identity, given to mkfs.ext4, and the MBR disk
// signature of the partitioned disk, in hex as PARTUUID= spells it.
const (
	diskUUID          = "0b9c5d5e-7a35-4c43-a7a8-1f0d8e9d6b0c"
	diskLabel         = "ksuroot"
	partDiskSignature = "4b53552d"
)

// virtioBlkModalias is the PCI modalias of QEMU's virtio-blk device. It
// selects virtio_pci, which is a module on Debian's 6.1 cloud kernel that
// virtio_blk's dependencies do not name.
const virtioBlkModalias = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"

// bootTimeout bounds one boot under software emulation, where a Debian
// cloud kernel reaches its init in about 3 s.
const bootTimeout = 120 * time.Second

// testKernel is one unpacked kernel package.
type testKernel struct {
	release string
	vmlinuz string
	modules string // ROOT/lib/modules/RELEASE
}

// bootCase is one boot of the guest and the console lines it must print,
// in order.
type bootCase struct {
	name    string
	cmdline string
	// snapshot adds a snapshot archive with a made-up payload.
	snapshot bool
	// partitioned boots the disk with an MBR and the root in partition 1.
	partitioned bool
	want        []string
	// allKernels runs the case on every kernel; the others run on one
	// kernel each, taken in turn, to keep the run short.
	allKernels bool
}

var stagesDone = []string{
	`KSU-PHASE early done ms=\d+`,
	`KSU-PHASE modules done ms=\d+`,
	`KSU-PHASE mount done ms=\d+`,
	`KSU-PHASE restore done ms=\d+`,
	`ksu-init: freed the initramfs: \d+ entries removed, 0 failed`,
	`KSU-PHASE handoff done ms=\d+`,
}

func bootCases() []bootCase {
	passing := append(append([]string{}, stagesDone...), `^FAKEINIT started pid=1`, `^FAKEINIT PASS`)
	return []bootCase{
		{name: "root by UUID", cmdline: "root=UUID=" + diskUUID + " rw -- fakeinit-arg", want: passing, allKernels: true},
		{name: "root by path", cmdline: "root=/dev/vda rw -- fakeinit-arg", want: passing},
		{
			name: "root by PARTUUID", cmdline: "root=PARTUUID=" + partDiskSignature + "-01 rw -- fakeinit-arg", partitioned: true,
			want: append([]string{`ksu-init: mounted root /dev/vda1 \(ext4`}, passing[2:]...),
		},
		{name: "root by LABEL read-only", cmdline: "root=LABEL=" + diskLabel + " ro -- fakeinit-arg fakeinit-expect-ro", want: passing},
		{
			name:    "missing root powers off",
			cmdline: "root=/dev/vdz ksu.rootwait=1 ksu.onfail=poweroff -- fakeinit-arg",
			want: []string{
				`KSU-PHASE modules done`,
				`ksu-init: waiting up to 1s for root device /dev/vdz`,
				`KSU-PHASE mount failed ms=\d+`,
				`KSU-FATAL mount: find root device /dev/vdz: timed out after 1s; block devices present: vda \(ext4`,
				`reboot: Power down`,
			},
		},
		{
			name:     "snapshot reported",
			cmdline:  "root=/dev/vda rw -- fakeinit-arg",
			snapshot: true,
			want: []string{
				`ksu-init: snapshot in /ksu verified: taken on kernel 6\.1\.0-test, 4096 bytes, 19 compressed in 1 parts`,
				`ksu-init: restore is not implemented in this build`,
				`KSU-PHASE handoff done`,
				`^FAKEINIT PASS`,
			},
		},
	}
}

// TestIntegrationQEMUBoot boots each kernel of KSU_INIT_TEST_KERNELS with
// the base initramfs, a modules archive built from that kernel's package,
// and a small ext4 root disk whose /sbin/init is testdata/fakeinit.
func TestIntegrationQEMUBoot(t *testing.T) {
	kernels := findTestKernels(t)
	for _, tool := range []string{qemu.DefaultBinary, "qemu-img", "mkfs.ext4", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found", tool)
		}
	}
	work := t.TempDir()
	basePath := filepath.Join(work, "base.cpio")
	start := time.Now()
	if err := base.Build(klogtest.New(t), base.Options{SourceDir: "../..", Output: basePath}); err != nil {
		t.Fatalf("build base initramfs: %v", err)
	}
	t.Logf("base initramfs built in %v", time.Since(start).Round(time.Millisecond))
	disk, partDisk := makeRootDisks(t, work)
	snapshot := writeSnapshotArchive(t, work)

	for i, tc := range bootCases() {
		for j, k := range kernels {
			if !tc.allKernels && i%len(kernels) != j {
				continue
			}
			t.Run(k.release+"/"+tc.name, func(t *testing.T) {
				parts := []string{basePath, writeModulesArchive(t, work, k)}
				if tc.snapshot {
					parts = append(parts, snapshot)
				}
				initrd := concatFiles(t, filepath.Join(t.TempDir(), "initrd.img"), parts...)
				d := disk
				if tc.partitioned {
					d = partDisk
				}
				bootAndCheck(t, k, initrd, d, tc)
			})
		}
	}
}

// findTestKernels reads KSU_INIT_TEST_KERNELS, or skips the test.
func findTestKernels(t *testing.T) []testKernel {
	t.Helper()
	env := os.Getenv(kernelsEnv)
	if env == "" {
		t.Skipf("skipping: set %s to unpacked kernel packages, separated by spaces "+
			"(dpkg-deb -x linux-image-*.deb DIR && depmod -b DIR RELEASE)", kernelsEnv)
	}
	var kernels []testKernel
	for _, root := range strings.Fields(env) {
		vmlinuz, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
		if err != nil || len(vmlinuz) != 1 {
			t.Fatalf("%s: want one boot/vmlinuz-* in %s, found %q", kernelsEnv, root, vmlinuz)
		}
		release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
		modules := filepath.Join(root, "lib", "modules", release)
		if _, err := os.Stat(filepath.Join(modules, "modules.dep")); err != nil {
			t.Fatalf("%s: %v (run depmod -b %s %s)", kernelsEnv, err, root, release)
		}
		kernels = append(kernels, testKernel{release: release, vmlinuz: vmlinuz[0], modules: modules})
	}
	return kernels
}

// makeRootDisks builds fakeinit and makes two disk images with it as
// /sbin/init: a whole-disk ext4 filesystem, and a disk with an MBR whose
// partition 1 holds the same tree.
func makeRootDisks(t *testing.T, work string) (whole, partitioned string) {
	t.Helper()
	tree := filepath.Join(work, "rootfs")
	for _, d := range []string{"sbin", "dev", "proc", "sys", "run"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(tree, "sbin", "init"), "./testdata/fakeinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fakeinit: %v\n%s", err, out)
	}
	whole = filepath.Join(work, "root.img")
	mkfs(t, whole, "-d", tree, "-L", diskLabel, "-U", diskUUID, whole, "64M")

	// Partition 1 starts at sector 2048 (1 MiB) and fills the disk.
	const diskSize, start = 64 << 20, 2048
	partitioned = filepath.Join(work, "part.img")
	mkfs(t, partitioned, "-d", tree, "-E", fmt.Sprintf("offset=%d", start*512), partitioned, "63M")
	mbr := make([]byte, 512)
	sig, err := strconv.ParseUint(partDiskSignature, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(mbr[440:], uint32(sig))
	entry := mbr[446:462]
	entry[4] = 0x83 // Linux
	binary.LittleEndian.PutUint32(entry[8:], start)
	binary.LittleEndian.PutUint32(entry[12:], diskSize/512-start)
	mbr[510], mbr[511] = 0x55, 0xaa
	f, err := os.OpenFile(partitioned, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	return whole, partitioned
}

// mkfs runs mkfs.ext4 with args, on a new file of 64 MiB at path.
func mkfs(t *testing.T, path string, args ...string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mkfs.ext4", append([]string{"-q", "-F"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
}

// writeModulesArchive collects virtio_blk, ext4 and the modules of the
// virtio-blk PCI device for k, the way image/build.sh does.
func writeModulesArchive(t *testing.T, work string, k testKernel) string {
	t.Helper()
	path := filepath.Join(work, "modules-"+k.release+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	ix, err := initramfs.LoadIndex(k.modules)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ix.Resolve([]string{"virtio_blk", "ext4"}, []string{virtioBlkModalias})
	if err != nil {
		t.Fatalf("Resolve(virtio_blk, ext4) for %s: %v", k.release, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := initramfs.WriteModulesArchive(f, k.release, mods...); err != nil {
		t.Fatalf("WriteModulesArchive(%s): %v", k.release, err)
	}
	return path
}

// writeSnapshotArchive writes a snapshot archive whose payload is not a
// real snapshot: ksu-init only verifies the archive for now.
func writeSnapshotArchive(t *testing.T, work string) string {
	t.Helper()
	path := filepath.Join(work, "snapshot.cpio")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const payload = "not a real snapshot"
	hdr := snapshot.ArchiveHeader{KernelRelease: "6.1.0-test", Size: 4096, CompressedSize: uint64(len(payload))}
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	if _, err := snapshot.WriteCPIO(f, dir, hdr, strings.NewReader(payload)); err != nil {
		t.Fatalf("WriteCPIO() = %v", err)
	}
	return path
}

// concatFiles joins archives with initramfs.Concat.
func concatFiles(t *testing.T, out string, parts ...string) string {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var readers []io.Reader
	for _, p := range parts {
		r, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers = append(readers, r)
	}
	if err := initramfs.Concat(f, readers...); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	initStartTime = regexp.MustCompile(`ksu-init: started as PID 1, ([0-9.]+m?s) after kernel start`)
	handoffTime   = regexp.MustCompile(`ksu-init: handing off to \S+, ([0-9.]+m?s) after kernel start`)
)

// bootAndCheck boots the guest, waits for each expected console line in
// order, then for the guest to power off.
func bootAndCheck(t *testing.T, k testKernel, initrd, disk string, tc bootCase) {
	// N.B. console= and panic= come first because qemu.Config appends
	// its defaults for them at the end, which is after "--", where the
	// kernel would pass them to init instead.
	cmdline := "console=ttyS0 panic=-1 " + tc.cmdline
	g := qemu.StartT(t, qemu.Config{Kernel: k.vmlinuz, Initrd: initrd, Disk: disk, Cmdline: cmdline})
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	var from qemu.Cursor
	for _, pattern := range tc.want {
		line, err := g.WaitConsoleFrom(ctx, from, regexp.MustCompile(pattern))
		if err != nil {
			t.Fatalf("console: %v", err)
		}
		from = line.Next()
	}
	if err := g.Wait(ctx); err != nil {
		t.Fatalf("guest did not power off: %v", err)
	}
	var started string
	for _, l := range g.Console(0) {
		if m := initStartTime.FindStringSubmatch(l.Text); m != nil {
			started = m[1]
		}
		if m := handoffTime.FindStringSubmatch(l.Text); m != nil {
			t.Logf("%s: since kernel start (CLOCK_BOOTTIME): ksu-init started at %s, handoff at %s; handoff line %v after QEMU start",
				k.release, started, m[1], l.At.Sub(g.StartedAt()).Round(time.Millisecond))
		}
	}
}
