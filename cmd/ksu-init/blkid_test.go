package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testUUID = []byte{0x0b, 0x9c, 0x5d, 0x5e, 0x7a, 0x35, 0x4c, 0x43, 0xa7, 0xa8, 0x1f, 0x0d, 0x8e, 0x9d, 0x6b, 0x0c}

const testUUIDText = "0b9c5d5e-7a35-4c43-a7a8-1f0d8e9d6b0c"

// image returns a zeroed device image of n bytes with the given writes.
func image(n int, writes map[int][]byte) *bytes.Reader {
	b := make([]byte, n)
	for off, data := range writes {
		copy(b[off:], data)
	}
	return bytes.NewReader(b)
}

func TestProbeFS(t *testing.T) {
	for _, tt := range []struct {
		name   string
		dev    *bytes.Reader
		want   fsInfo
		wantOK bool
	}{
		{"empty device", image(128*1024, nil), fsInfo{}, false},
		{"too small", image(100, nil), fsInfo{}, false},
		{
			"ext4",
			image(4096, map[int][]byte{1024 + 0x38: {0x53, 0xef}, 1024 + 0x68: testUUID, 1024 + 0x78: []byte("root\x00")}),
			fsInfo{"ext4", testUUIDText, "root"}, true,
		},
		{
			"ext4 label of 16 bytes",
			image(4096, map[int][]byte{1024 + 0x38: {0x53, 0xef}, 1024 + 0x68: testUUID, 1024 + 0x78: []byte("0123456789abcdef")}),
			fsInfo{"ext4", testUUIDText, "0123456789abcdef"}, true,
		},
		{
			"xfs",
			image(4096, map[int][]byte{0: []byte("XFSB"), 32: testUUID, 108: []byte("data")}),
			fsInfo{"xfs", testUUIDText, "data"}, true,
		},
		{
			"btrfs",
			image(0x11000, map[int][]byte{0x10040: []byte("_BHRfS_M"), 0x10020: testUUID, 0x1012b: []byte("pool")}),
			fsInfo{"btrfs", testUUIDText, "pool"}, true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := probeFS(tt.dev)
			if ok != tt.wantOK {
				t.Fatalf("probeFS() ok = %t, want %t", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(fsInfo{})); diff != "" {
				t.Errorf("probeFS() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProbeFSRealExt4 checks the ext4 offsets against an image made by
// mkfs.ext4.
func TestProbeFSRealExt4(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("skipping: mkfs.ext4 not found (apt-get install e2fsprogs)")
	}
	img := filepath.Join(t.TempDir(), "ext4.img")
	out, err := exec.Command(mkfs, "-q", "-F", "-U", testUUIDText, "-L", "ksu-root", img, "4M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, ok := probeFS(f)
	want := fsInfo{"ext4", testUUIDText, "ksu-root"}
	if !ok || got != want {
		t.Errorf("probeFS(mkfs.ext4 image) = %+v, %t, want %+v, true", got, ok, want)
	}
}

func TestFormatGUID(t *testing.T) {
	// The EFI system partition type GUID as stored on disk.
	b := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	if got, want := formatGUID(b), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"; got != want {
		t.Errorf("formatGUID(% x) = %q, want %q", b, got, want)
	}
}

// gptImage returns a disk image with a protective MBR and a GPT of 128
// entries whose entries 1 and 3 are used.
func gptImage(sector int) *bytes.Reader {
	hdr := make([]byte, 92)
	copy(hdr, "EFI PART")
	binary.LittleEndian.PutUint64(hdr[gptEntriesLBAOffset:], 2)
	binary.LittleEndian.PutUint32(hdr[gptNumEntriesOffset:], 128)
	binary.LittleEndian.PutUint32(hdr[gptEntrySizeOffset:], 128)
	entry := func(typeByte byte, guid []byte) []byte {
		e := make([]byte, 128)
		e[0] = typeByte
		copy(e[16:], guid)
		return e
	}
	return image(2*sector+128*128, map[int][]byte{
		510:                {0x55, 0xaa},
		sector:             hdr,
		2 * sector:         entry(0xaf, testUUID),
		2*sector + 2*128:   entry(0x28, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
		2*sector + 127*128: make([]byte, 128),
	})
}

func TestPartUUIDs(t *testing.T) {
	mbr := image(512, map[int][]byte{440: {0x78, 0x56, 0x34, 0x12}, 510: {0x55, 0xaa}})
	for _, tt := range []struct {
		name    string
		dev     *bytes.Reader
		sector  int64
		numbers []int
		want    map[int]string
	}{
		{"no table", image(4096, nil), 512, []int{1}, nil},
		{"mbr with logical partition", mbr, 512, []int{1, 5}, map[int]string{1: "12345678-01", 5: "12345678-05"}},
		{
			"gpt", gptImage(512), 512, []int{1, 3},
			map[int]string{1: "5e5d9c0b-357a-434c-a7a8-1f0d8e9d6b0c", 3: "04030201-0605-0807-090a-0b0c0d0e0f10"},
		},
		{
			"gpt on 4k sectors", gptImage(4096), 4096, []int{1},
			map[int]string{1: "5e5d9c0b-357a-434c-a7a8-1f0d8e9d6b0c", 3: "04030201-0605-0807-090a-0b0c0d0e0f10"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := partUUIDs(tt.dev, tt.sector, tt.numbers)
			if err != nil {
				t.Fatalf("partUUIDs() = %v, want nil error", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("partUUIDs() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPartUUIDsCorruptGPT(t *testing.T) {
	hdr := make([]byte, 92)
	copy(hdr, "EFI PART")
	binary.LittleEndian.PutUint32(hdr[gptNumEntriesOffset:], 1<<30)
	binary.LittleEndian.PutUint32(hdr[gptEntrySizeOffset:], 128)
	if _, err := partUUIDs(image(4096, map[int][]byte{512: hdr}), 512, []int{1}); err == nil {
		t.Errorf("partUUIDs(GPT with 2^30 entries) = nil error, want an error")
	}
}
