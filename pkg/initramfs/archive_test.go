package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// fakeModule returns the content of a test module file: an ELF magic
// followed by the module name, so every module has distinct content.
func fakeModule(name string) []byte {
	return []byte("\x7fELF fake module " + name)
}

// compress returns data compressed with the format that the suffix of name
// names.
func compress(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch {
	case strings.HasSuffix(name, ".xz"):
		w, err = xz.NewWriter(&buf)
	case strings.HasSuffix(name, ".zst"):
		w, err = zstd.NewWriter(&buf)
	case strings.HasSuffix(name, ".gz"):
		w = gzip.NewWriter(&buf)
	default:
		return data
	}
	if err != nil {
		t.Fatalf("compress %s: %v", name, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("compress %s: %v", name, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("compress %s: %v", name, err)
	}
	return buf.Bytes()
}

// modulesDir returns a copy of testdata/modules with a module file for
// every entry of modules.dep, compressed with the format of its suffix.
func modulesDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/modules")); err != nil {
		t.Fatal(err)
	}
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatalf("LoadIndex(%q) = %v", dir, err)
	}
	for name, rel := range ix.paths {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, compress(t, rel, fakeModule(name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readArchive returns the records of a newc archive, each file's content
// keyed by name, and the names in archive order.
func readArchive(t *testing.T, data []byte) (order []string, content map[string]string, modes map[string]uint64) {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("read archive: %v", err)
	}
	content = make(map[string]string)
	modes = make(map[string]uint64)
	for _, r := range recs {
		order = append(order, r.Name)
		modes[r.Name] = r.Mode
		if r.ReaderAt != nil {
			b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				t.Fatalf("read archive entry %s: %v", r.Name, err)
			}
			content[r.Name] = string(b)
		}
	}
	return order, content, modes
}

func TestWriteModulesArchive(t *testing.T) {
	dir := modulesDir(t)
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ix.Resolve([]string{"xfs", "virtio_blk"}, nil)
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	var buf bytes.Buffer
	if err := WriteModulesArchive(&buf, "6.12.0-test", mods...); err != nil {
		t.Fatalf("WriteModulesArchive() = %v, want nil error", err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}

	order, content, modes := readArchive(t, buf.Bytes())
	const base = "lib/modules/6.12.0-test/"
	wantOrder := []string{
		"lib", "lib/modules", "lib/modules/6.12.0-test",
		base + "kernel", base + "kernel/arch", base + "kernel/arch/x86", base + "kernel/arch/x86/crypto",
		base + "kernel/arch/x86/crypto/crc32c-intel.ko",
		base + "kernel/lib", base + "kernel/lib/libcrc32c.ko",
		base + "kernel/fs", base + "kernel/fs/xfs", base + "kernel/fs/xfs/xfs.ko",
		base + "kernel/drivers", base + "kernel/drivers/virtio", base + "kernel/drivers/virtio/virtio.ko",
		base + "kernel/drivers/virtio/virtio_ring.ko",
		base + "kernel/drivers/block", base + "kernel/drivers/block/virtio_blk.ko",
		base + "ksu-modules.load",
	}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("archive entries mismatch (-want +got):\n%s", diff)
	}
	for _, m := range mods {
		name := base + strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m.Path, ".xz"), ".zst"), ".gz")
		if got, want := content[name], string(fakeModule(m.Name)); got != want {
			t.Errorf("archive entry %s = %q, want %q (decompressed)", name, got, want)
		}
		if got, want := modes[name], uint64(cpio.S_IFREG|0o644); got != want {
			t.Errorf("archive entry %s mode = %#o, want %#o", name, got, want)
		}
	}
	wantList := "kernel/arch/x86/crypto/crc32c-intel.ko\n" +
		"kernel/lib/libcrc32c.ko\n" +
		"kernel/fs/xfs/xfs.ko\n" +
		"kernel/drivers/virtio/virtio.ko\n" +
		"kernel/drivers/virtio/virtio_ring.ko\n" +
		"kernel/drivers/block/virtio_blk.ko\n"
	if diff := cmp.Diff(wantList, content[base+"ksu-modules.load"]); diff != "" {
		t.Errorf("load list mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteModulesArchiveEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteModulesArchive(&buf, "6.1.0-test"); err != nil {
		t.Fatalf("WriteModulesArchive() with no modules = %v, want nil error", err)
	}
	_, content, _ := readArchive(t, buf.Bytes())
	list, ok := content["lib/modules/6.1.0-test/ksu-modules.load"]
	if !ok || list != "" {
		t.Errorf("load list = %q (present %t), want an empty file", list, ok)
	}
}

func TestWriteModulesArchiveErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "bad.ko")
	if err := os.WriteFile(notELF, []byte("not a module"), 0o644); err != nil {
		t.Fatal(err)
	}
	badXZ := filepath.Join(dir, "bad.ko.xz")
	if err := os.WriteFile(badXZ, fakeModule("bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		release string
		mod     Module
	}{
		{"empty release", "", Module{Name: "a", Path: "a.ko", Source: notELF}},
		{"release with slash", "6.1/x", Module{Name: "a", Path: "a.ko", Source: notELF}},
		{"not ELF", "6.1", Module{Name: "bad", Path: "bad.ko", Source: notELF}},
		{"corrupt xz", "6.1", Module{Name: "bad", Path: "bad.ko.xz", Source: badXZ}},
		{"missing file", "6.1", Module{Name: "gone", Path: "gone.ko", Source: filepath.Join(dir, "gone.ko")}},
		{"absolute path", "6.1", Module{Name: "a", Path: "/lib/a.ko", Source: notELF}},
		{"path escapes", "6.1", Module{Name: "a", Path: "../a.ko", Source: notELF}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := WriteModulesArchive(io.Discard, tt.release, tt.mod); err == nil {
				t.Errorf("WriteModulesArchive(%q, %+v) = nil error, want an error", tt.release, tt.mod)
			}
		})
	}
}

func TestConcatAligns(t *testing.T) {
	var buf bytes.Buffer
	parts := []io.Reader{strings.NewReader("abcde"), strings.NewReader("fghi"), strings.NewReader("j")}
	if err := Concat(&buf, parts...); err != nil {
		t.Fatalf("Concat() = %v, want nil error", err)
	}
	if got, want := buf.String(), "abcde\x00\x00\x00fghij\x00\x00\x00"; got != want {
		t.Errorf("Concat() wrote %q, want %q", got, want)
	}
}

func TestConcatArchivesReadBack(t *testing.T) {
	var first, second, joined bytes.Buffer
	if err := WriteModulesArchive(&first, "6.1.0-a"); err != nil {
		t.Fatal(err)
	}
	if err := WriteModulesArchive(&second, "6.12.0-b"); err != nil {
		t.Fatal(err)
	}
	firstLen := first.Len()
	if err := Concat(&joined, &first, &second); err != nil {
		t.Fatal(err)
	}
	// The kernel reads on past each trailer; read the second archive
	// where the first one ends, as the kernel does.
	_, content, _ := readArchive(t, joined.Bytes()[firstLen:])
	if _, ok := content["lib/modules/6.12.0-b/ksu-modules.load"]; !ok {
		t.Errorf("second archive of the concatenation lacks its load list; entries: %v", content)
	}
}
