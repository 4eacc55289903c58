package initramfs

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func loadTestIndex(t *testing.T) *Index {
	t.Helper()
	ix, err := LoadIndex("testdata/modules")
	if err != nil {
		t.Fatalf("LoadIndex(testdata/modules) = %v, want nil error", err)
	}
	return ix
}

// names returns the module names of mods, in order.
func names(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func TestResolve(t *testing.T) {
	ix := loadTestIndex(t)
	const virtioBlkPCI = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
	for _, tt := range []struct {
		name       string
		modules    []string
		modaliases []string
		want       []string
	}{
		{"none", nil, nil, nil},
		{"dependencies first", []string{"virtio_blk"}, nil, []string{"virtio", "virtio_ring", "virtio_blk"}},
		{"dash spelling", []string{"virtio-blk"}, nil, []string{"virtio", "virtio_ring", "virtio_blk"}},
		{"built-in skipped", []string{"ext4", "fs-ext4", "8250"}, nil, nil},
		{"alias name", []string{"fs-xfs"}, nil, []string{"crc32c_intel", "libcrc32c", "xfs"}},
		{
			// The PCI modalias of QEMU's virtio-blk device selects
			// virtio_pci, which virtio_blk's dependencies do not name.
			"modalias adds transport",
			[]string{"virtio_blk"}, []string{virtioBlkPCI},
			[]string{"virtio", "virtio_ring", "virtio_blk", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"},
		},
		{"unmatched modalias skipped", nil, []string{"platform:serial8250", "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00"}, nil},
		{"no duplicates", []string{"virtio_blk", "virtio_blk", "virtio"}, []string{"virtio:d00000002v00001AF4"}, []string{"virtio", "virtio_ring", "virtio_blk"}},
		{"unresolvable soft dependency skipped", []string{"virtio_net"}, nil, []string{"virtio", "virtio_ring", "failover", "net_failover", "virtio_net"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ix.Resolve(tt.modules, tt.modaliases)
			if err != nil {
				t.Fatalf("Resolve(%q, %q) = %v, want nil error", tt.modules, tt.modaliases, err)
			}
			if diff := cmp.Diff(tt.want, names(got)); diff != "" {
				t.Errorf("Resolve(%q, %q) mismatch (-want +got):\n%s", tt.modules, tt.modaliases, diff)
			}
		})
	}
}

func TestResolvePaths(t *testing.T) {
	ix := loadTestIndex(t)
	got, err := ix.Resolve([]string{"xfs"}, nil)
	if err != nil {
		t.Fatalf("Resolve(xfs) = %v, want nil error", err)
	}
	want := []Module{
		{"crc32c_intel", "kernel/arch/x86/crypto/crc32c-intel.ko.gz", filepath.Join("testdata/modules", "kernel/arch/x86/crypto/crc32c-intel.ko.gz")},
		{"libcrc32c", "kernel/lib/libcrc32c.ko.zst", filepath.Join("testdata/modules", "kernel/lib/libcrc32c.ko.zst")},
		{"xfs", "kernel/fs/xfs/xfs.ko.xz", filepath.Join("testdata/modules", "kernel/fs/xfs/xfs.ko.xz")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve(xfs) mismatch (-want +got):\n%s", diff)
	}
}

func TestResolveUnknownModule(t *testing.T) {
	ix := loadTestIndex(t)
	_, err := ix.Resolve([]string{"virtio_blk", "no_such_driver"}, nil)
	if !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("Resolve(no_such_driver) = %v, want ErrUnknownModule", err)
	}
	if want := `"no_such_driver"`; !strings.Contains(err.Error(), want) {
		t.Errorf("Resolve(no_such_driver) error %q does not name %s", err, want)
	}
}

func TestResolveCycle(t *testing.T) {
	ix := &Index{
		dir:   "x",
		paths: map[string]string{"a": "a.ko", "b": "b.ko"},
		deps:  map[string][]string{"a": {"b"}, "b": {"a"}},
	}
	if _, err := ix.Resolve([]string{"a"}, nil); err == nil {
		t.Errorf("Resolve(a) with a cycle a->b->a = nil error, want an error")
	}
}
