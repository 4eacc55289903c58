package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ksu-project/ksu/pkg/klog/klogtest"
)

func TestParseRootSpec(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    rootSpec
		wantErr bool
	}{
		{"/dev/vda", rootSpec{rootPath, "/dev/vda"}, false},
		{"/dev/mapper/vg-root", rootSpec{rootPath, "/dev/mapper/vg-root"}, false},
		{"UUID=" + testUUIDText, rootSpec{rootUUID, testUUIDText}, false},
		{"LABEL=ksu root", rootSpec{rootLabel, "ksu root"}, false},
		{"PARTUUID=12345678-01", rootSpec{rootPartUUID, "12345678-01"}, false},
		{"/dev/disk/by-uuid/" + testUUIDText, rootSpec{rootUUID, testUUIDText}, false},
		{"/dev/disk/by-label/root", rootSpec{rootLabel, "root"}, false},
		{"/dev/disk/by-partuuid/12345678-01", rootSpec{rootPartUUID, "12345678-01"}, false},
		{"254:1", rootSpec{rootDevNum, "254:1"}, false},
		{"", rootSpec{}, true},
		{"UUID=", rootSpec{}, true},
		{"PARTUUID=12345678-01/PARTNROFF=1", rootSpec{}, true},
		{"vda", rootSpec{}, true},
		{"254:x", rootSpec{}, true},
	} {
		got, err := parseRootSpec(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRootSpec(%q) error = %v, want error %t", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("parseRootSpec(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// fakeDevices builds a sysfs and a /dev with disk vda (MBR, signature
// 0x12345678) holding partition vda1 (ext4), and disk vdb (XFS, no
// partitions), the layout a guest with two virtio disks shows.
func fakeDevices(t *testing.T) deviceFinder {
	t.Helper()
	root := t.TempDir()
	f := deviceFinder{sysRoot: filepath.Join(root, "sys"), devRoot: filepath.Join(root, "dev")}
	dirs := []string{
		"sys/devices/pci0/virtio1/block/vda/vda1",
		"sys/devices/pci0/virtio2/block/vdb",
		"sys/class/block",
		"sys/dev/block",
		"dev",
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"sys/class/block/vda":  "../../devices/pci0/virtio1/block/vda",
		"sys/class/block/vda1": "../../devices/pci0/virtio1/block/vda/vda1",
		"sys/class/block/vdb":  "../../devices/pci0/virtio2/block/vdb",
		"sys/dev/block/254:1":  "../../devices/pci0/virtio1/block/vda/vda1",
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]io.Reader{
		"sys/devices/pci0/virtio1/block/vda/vda1/partition": strings.NewReader("1\n"),
		"dev/vda":  image(512, map[int][]byte{440: {0x78, 0x56, 0x34, 0x12}, 510: {0x55, 0xaa}}),
		"dev/vda1": image(4096, map[int][]byte{1024 + 0x38: {0x53, 0xef}, 1024 + 0x68: testUUID, 1024 + 0x78: []byte("root")}),
		"dev/vdb":  image(4096, map[int][]byte{0: []byte("XFSB"), 32: bytes.Repeat([]byte{0xab}, 16), 108: []byte("data")}),
	}
	for name, r := range files {
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestListBlockDevs(t *testing.T) {
	f := fakeDevices(t)
	got, err := f.listBlockDevs()
	if err != nil {
		t.Fatalf("listBlockDevs() = %v, want nil error", err)
	}
	want := []blockDev{{name: "vda"}, {name: "vda1", disk: "vda", partition: 1}, {name: "vdb"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(blockDev{})); diff != "" {
		t.Errorf("listBlockDevs() mismatch (-want +got):\n%s", diff)
	}
}

func TestDeviceFinderFind(t *testing.T) {
	f := fakeDevices(t)
	vda1 := filepath.Join(f.devRoot, "vda1")
	vdb := filepath.Join(f.devRoot, "vdb")
	for _, tt := range []struct {
		spec rootSpec
		want string
	}{
		{rootSpec{rootPath, vda1}, vda1},
		{rootSpec{rootPath, filepath.Join(f.devRoot, "vdc")}, ""},
		{rootSpec{rootUUID, testUUIDText}, vda1},
		{rootSpec{rootUUID, strings.ToUpper(testUUIDText)}, vda1},
		{rootSpec{rootUUID, "abababab-abab-abab-abab-abababababab"}, vdb},
		{rootSpec{rootUUID, "00000000-0000-0000-0000-000000000000"}, ""},
		{rootSpec{rootLabel, "data"}, vdb},
		{rootSpec{rootLabel, "Data"}, ""},
		{rootSpec{rootPartUUID, "12345678-01"}, vda1},
		{rootSpec{rootPartUUID, "12345678-02"}, ""},
		{rootSpec{rootDevNum, "254:1"}, vda1},
		{rootSpec{rootDevNum, "254:9"}, ""},
	} {
		got, err := f.find(tt.spec)
		if err != nil {
			t.Errorf("find(%v) = %v, want nil error", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("find(%v) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestWaitForRootTimeout(t *testing.T) {
	f := fakeDevices(t)
	log := klogtest.New(t)
	_, err := waitForRoot(log, f, rootSpec{rootLabel, "missing"}, 100*time.Millisecond)
	if err == nil {
		t.Fatalf("waitForRoot(LABEL=missing) = nil error, want a timeout")
	}
	for _, want := range []string{"timed out", `vda1 (ext4 UUID=` + testUUIDText + ` LABEL="root")`, "vdb (xfs", "ksu.rootwait="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("waitForRoot(LABEL=missing) error %q does not contain %q", err, want)
		}
	}
}

func TestWaitForRootAppears(t *testing.T) {
	f := fakeDevices(t)
	late := filepath.Join(f.devRoot, "vdc")
	done := make(chan error, 1)
	go func() {
		time.Sleep(3 * rootPollInterval)
		done <- os.WriteFile(late, nil, 0o644)
	}()
	got, err := waitForRoot(klogtest.New(t), f, rootSpec{rootPath, late}, 10*time.Second)
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil || got != late {
		t.Errorf("waitForRoot(%s) = %q, %v, want %q, nil", late, got, err, late)
	}
}

func TestFSTypeCandidates(t *testing.T) {
	for _, tt := range []struct {
		cmdline []string
		probed  string
		want    []string
	}{
		{nil, "", []string{"ext4", "xfs", "btrfs"}},
		{nil, "xfs", []string{"xfs", "ext4", "btrfs"}},
		{nil, "f2fs", []string{"f2fs", "ext4", "xfs", "btrfs"}},
		{[]string{"ext3"}, "xfs", []string{"ext3"}},
	} {
		got := fsTypeCandidates(tt.cmdline, tt.probed)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("fsTypeCandidates(%q, %q) mismatch (-want +got):\n%s", tt.cmdline, tt.probed, diff)
		}
	}
}
