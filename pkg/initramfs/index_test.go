package initramfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModuleName(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"virtio_blk", "virtio_blk"},
		{"virtio-blk", "virtio_blk"},
		{"kernel/drivers/block/virtio_blk.ko", "virtio_blk"},
		{"kernel/drivers/block/virtio_blk.ko.xz", "virtio_blk"},
		{"kernel/arch/x86/crypto/crc32c-intel.ko.zst", "crc32c_intel"},
		{"kernel/fs/ext4/ext4.ko.gz", "ext4"},
	} {
		if got := ModuleName(tt.in); got != tt.want {
			t.Errorf("ModuleName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseDep(t *testing.T) {
	in := "kernel/drivers/virtio/virtio.ko:\n" +
		"kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
	ix := &Index{paths: map[string]string{}, deps: map[string][]string{}}
	if err := ix.parseDep(strings.NewReader(in)); err != nil {
		t.Fatalf("parseDep() = %v, want nil error", err)
	}
	wantPaths := map[string]string{
		"virtio":     "kernel/drivers/virtio/virtio.ko",
		"virtio_blk": "kernel/drivers/block/virtio_blk.ko.xz",
	}
	if diff := cmp.Diff(wantPaths, ix.paths); diff != "" {
		t.Errorf("parseDep() paths mismatch (-want +got):\n%s", diff)
	}
	wantDeps := map[string][]string{
		"virtio":     nil,
		"virtio_blk": {"virtio_ring", "virtio"},
	}
	if diff := cmp.Diff(wantDeps, ix.deps); diff != "" {
		t.Errorf("parseDep() deps mismatch (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		parse func(*Index, string) error
		in    string
	}{
		{"dep without colon", func(ix *Index, s string) error { return ix.parseDep(strings.NewReader(s)) }, "kernel/a.ko kernel/b.ko\n"},
		{"alias with two words", func(ix *Index, s string) error { return ix.parseAlias(strings.NewReader(s)) }, "alias fs-xfs\n"},
		{"alias wrong keyword", func(ix *Index, s string) error { return ix.parseAlias(strings.NewReader(s)) }, "options xfs a=b\n"},
		{"softdep without module", func(ix *Index, s string) error { return ix.parseSoftdep(strings.NewReader(s)) }, "softdep\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ix := &Index{paths: map[string]string{}, deps: map[string][]string{}, softdeps: map[string]softdep{}}
			if err := tt.parse(ix, tt.in); err == nil {
				t.Errorf("parse(%q) = nil error, want an error", tt.in)
			}
		})
	}
}

func TestParseSoftdep(t *testing.T) {
	in := "# comment\n" +
		"softdep libcrc32c pre: crc32c\n" +
		"softdep cifs gcm\n" +
		"softdep ksmbd pre: crc32 gcm post: md5\n"
	ix := &Index{softdeps: map[string]softdep{}}
	if err := ix.parseSoftdep(strings.NewReader(in)); err != nil {
		t.Fatalf("parseSoftdep() = %v, want nil error", err)
	}
	want := map[string]softdep{
		"libcrc32c": {pre: []string{"crc32c"}},
		"cifs":      {},
		"ksmbd":     {pre: []string{"crc32", "gcm"}, post: []string{"md5"}},
	}
	if diff := cmp.Diff(want, ix.softdeps, cmp.AllowUnexported(softdep{})); diff != "" {
		t.Errorf("parseSoftdep() mismatch (-want +got):\n%s", diff)
	}
}

func TestParseBuiltinModinfo(t *testing.T) {
	in := "ext4.alias=fs-ext4\x00ext4.license=GPL\x00printk.always_kmsg_dump=\x00crc32c_generic.alias=crc32c\x00"
	ix := &Index{builtin: map[string]bool{}}
	if err := ix.parseBuiltinModinfo(strings.NewReader(in)); err != nil {
		t.Fatalf("parseBuiltinModinfo() = %v, want nil error", err)
	}
	wantAliases := []alias{{"fs-ext4", "ext4"}, {"crc32c", "crc32c_generic"}}
	if diff := cmp.Diff(wantAliases, ix.builtinAliases, cmp.AllowUnexported(alias{})); diff != "" {
		t.Errorf("parseBuiltinModinfo() aliases mismatch (-want +got):\n%s", diff)
	}
	wantBuiltin := map[string]bool{"ext4": true, "crc32c_generic": true}
	if diff := cmp.Diff(wantBuiltin, ix.builtin); diff != "" {
		t.Errorf("parseBuiltinModinfo() built-in modules mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadIndexNeedsModulesDep(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadIndex(dir)
	if err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Errorf("LoadIndex(%q) = %v, want an error that says to run depmod", dir, err)
	}
}
