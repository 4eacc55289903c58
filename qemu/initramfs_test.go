package qemu

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cavaliercoder/go-cpio"
)

// testKernelsEnv names the kernels the tiny-initramfs tests boot: Debian
// kernel packages unpacked with dpkg-deb -x, separated by spaces or colons.
// Each directory has boot/vmlinuz-RELEASE and lib/modules/RELEASE.
const testKernelsEnv = "KSU_TEST_KERNELS"

// consoleModules are the modules that give the guest the agent's port, in
// load order. Kernels that build them in (Debian's 6.12 cloud kernel) ship
// none of the files, and the initramfs then loads nothing.
var consoleModules = []string{
	"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_console",
}

// testBinaries builds testinit and ksu-agent once per test binary.
var testBinaries struct {
	once        sync.Once
	dir         string
	init, agent string
	err         error
}

func buildTestBinaries(t *testing.T) (initPath, agentPath string) {
	t.Helper()
	b := &testBinaries
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "ksu-qemu-bin-")
		if b.err != nil {
			return
		}
		b.init = filepath.Join(b.dir, "testinit")
		b.agent = filepath.Join(b.dir, "ksu-agent")
		for pkg, out := range map[string]string{"./internal/testinit": b.init, "./guestagent": b.agent} {
			cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if output, err := cmd.CombinedOutput(); err != nil {
				b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, output)
				return
			}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.init, b.agent
}

// testKernel is a kernel package unpacked on the host.
type testKernel struct {
	release string
	vmlinuz string
	modules string // lib/modules/RELEASE
}

// testKernels returns the kernels that testKernelsEnv names, or skips.
func testKernels(t *testing.T) []testKernel {
	t.Helper()
	roots := strings.FieldsFunc(os.Getenv(testKernelsEnv), func(r rune) bool { return r == ':' || r == ' ' })
	if len(roots) == 0 {
		t.Skipf("skipping: %s not set; set it to Debian kernel packages unpacked with dpkg-deb -x", testKernelsEnv)
	}
	var kernels []testKernel
	for _, root := range roots {
		matches, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
		if len(matches) != 1 {
			t.Fatalf("%s: want one boot/vmlinuz-*, found %q", root, matches)
		}
		release := strings.TrimPrefix(filepath.Base(matches[0]), "vmlinuz-")
		kernels = append(kernels, testKernel{
			release: release,
			vmlinuz: matches[0],
			modules: filepath.Join(root, "lib", "modules", release),
		})
	}
	return kernels
}

// cpioFile is one entry of an initramfs: a directory when data and src are
// both empty, else a file with data or with the contents of src.
type cpioFile struct {
	name string
	src  string
	data []byte
	mode cpio.FileMode
}

// buildTinyInitramfs writes an initramfs with testinit as /init, the agent,
// the console modules kernel lacks, and, under /kexec, kernel and a copy of
// the same initramfs to kexec into.
func buildTinyInitramfs(t *testing.T, k testKernel) string {
	t.Helper()
	initPath, agentPath := buildTestBinaries(t)
	files := []cpioFile{
		{name: "dev"}, {name: "proc"}, {name: "sys"}, {name: "tmp"}, {name: "modules"},
		{name: "init", src: initPath, mode: 0o755},
		{name: "ksu-agent", src: agentPath, mode: 0o755},
	}
	files = append(files, moduleFiles(t, k)...)
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.cpio")
	writeCpio(t, inner, files)
	files = append(files,
		cpioFile{name: "kexec"},
		cpioFile{name: "kexec/vmlinuz", src: k.vmlinuz, mode: 0o644},
		cpioFile{name: "kexec/initrd.cpio", src: inner, mode: 0o644},
	)
	outer := filepath.Join(dir, "initrd.cpio")
	writeCpio(t, outer, files)
	return outer
}

// moduleFiles returns the console modules found in k's module tree and
// /modules/order, which lists them in load order.
func moduleFiles(t *testing.T, k testKernel) []cpioFile {
	t.Helper()
	found := map[string]string{}
	filepath.WalkDir(k.modules, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found[strings.TrimSuffix(d.Name(), ".ko")] = path
		}
		return nil
	})
	var files []cpioFile
	var order []string
	for _, name := range consoleModules {
		path, ok := found[name]
		if !ok {
			continue
		}
		files = append(files, cpioFile{name: "modules/" + name + ".ko", src: path, mode: 0o644})
		order = append(order, name+".ko")
	}
	order = append(order, "")
	return append(files, cpioFile{name: "modules/order", data: []byte(strings.Join(order, "\n")), mode: 0o644})
}

func writeCpio(t *testing.T, path string, files []cpioFile) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := cpio.NewWriter(f)
	for _, file := range files {
		data := file.data
		if file.src != "" {
			if data, err = os.ReadFile(file.src); err != nil {
				t.Fatal(err)
			}
		}
		hdr := &cpio.Header{Name: file.name, Mode: cpio.ModeRegular | file.mode, Size: int64(len(data))}
		if file.src == "" && file.data == nil {
			hdr.Mode = cpio.ModeDir | 0o755
		}
		if err := w.WriteHeader(hdr); err != nil {
			t.Fatalf("write cpio header %s: %v", file.name, err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatalf("write cpio data %s: %v", file.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close cpio %s: %v", path, err)
	}
}
