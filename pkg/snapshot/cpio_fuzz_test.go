package snapshot

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/fstest"
)

// Archive layout flags of FuzzArchiveReader: each one replaces a file of
// a valid layout with something the kernel's unpacker could also leave.
const (
	fuzzPart1Dir  = 1 << iota // ksu/snapshot.001 is a directory
	fuzzHeaderDir             // ksu/snapshot.hdr is a directory
	fuzzNoPart0               // ksu/snapshot.000 is missing
	fuzzPart3                 // a fourth part that no header lists
)

// archiveParts writes payload with CPIOWriter in parts of partSize bytes
// and returns the header file and the parts as the kernel unpacks them.
func archiveParts(f *testing.F, payload []byte, partSize uint64) [][]byte {
	f.Helper()
	out, err := os.Create(filepath.Join(f.TempDir(), "initramfs"))
	if err != nil {
		f.Fatal(err)
	}
	defer out.Close()
	cw, err := NewCPIOWriter(out, "ksu", partSize)
	if err != nil {
		f.Fatalf("NewCPIOWriter() = %v", err)
	}
	if _, err := cw.Write(payload); err != nil {
		f.Fatalf("CPIOWriter.Write() = %v", err)
	}
	if _, err := cw.Finish(ArchiveHeader{KernelRelease: "6.12.117+deb12-cloud-amd64", Size: 99}); err != nil {
		f.Fatalf("CPIOWriter.Finish() = %v", err)
	}
	archive, err := os.ReadFile(out.Name())
	if err != nil {
		f.Fatal(err)
	}
	_, fsys := extractCPIO(f, archive)
	files := [][]byte{fsys["ksu/"+HeaderName].Data}
	for i := 0; ; i++ {
		part, ok := fsys["ksu/"+PartName(i)]
		if !ok {
			return files
		}
		files = append(files, part.Data)
	}
}

// archiveLayout builds the directory the kernel would unpack: the header
// file, up to three parts and the damage that flags select.
func archiveLayout(hdr, p0, p1, p2 []byte, flags uint8) fstest.MapFS {
	fsys := fstest.MapFS{
		"ksu/" + HeaderName:  {Data: hdr},
		"ksu/" + PartName(0): {Data: p0},
		"ksu/" + PartName(1): {Data: p1},
		"ksu/" + PartName(2): {Data: p2},
	}
	if flags&fuzzPart1Dir != 0 {
		fsys["ksu/"+PartName(1)] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	}
	if flags&fuzzHeaderDir != 0 {
		fsys["ksu/"+HeaderName] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	}
	if flags&fuzzNoPart0 != 0 {
		delete(fsys, "ksu/"+PartName(0))
	}
	if flags&fuzzPart3 != 0 {
		fsys["ksu/"+PartName(3)] = &fstest.MapFile{Data: p0}
	}
	return fsys
}

// FuzzArchiveReader feeds ArchiveReader the files of an unpacked archive:
// a header and parts that may disagree with it in every way. Any input
// must give an error or exactly the payload that the header vouches for.
func FuzzArchiveReader(f *testing.F) {
	for _, tt := range []struct {
		payload  []byte
		partSize uint64
	}{
		{[]byte("zstd frame bytes, split in parts"), 12},
		{randomBytes(40, 3), 16},
		{nil, 8},
	} {
		files := archiveParts(f, tt.payload, tt.partSize)
		files = append(files, nil, nil, nil)
		f.Add(files[0], files[1], files[2], files[3], uint8(0))
		f.Add(files[0], files[1], files[2], files[3], uint8(fuzzPart3))
	}
	f.Fuzz(func(t *testing.T, hdr, p0, p1, p2 []byte, flags uint8) {
		fsys := archiveLayout(hdr, p0, p1, p2, flags)
		ar, err := OpenCPIO(fsys, "ksu")
		if err != nil {
			return
		}
		defer ar.Close()
		got, err := io.ReadAll(ar)
		if err != nil {
			return
		}
		checkArchivePayload(t, ar.Header(), fsys, got)
		if _, err := VerifyCPIO(fsys, "ksu"); err != nil {
			t.Fatalf("VerifyCPIO() = %v after the payload read without an error", err)
		}
	})
}

// checkArchivePayload fails the test unless payload is the parts that
// hdr lists, in order, with the length and CRC-32C that hdr records.
func checkArchivePayload(t *testing.T, hdr ArchiveHeader, fsys fstest.MapFS, payload []byte) {
	t.Helper()
	var want []byte
	for i := range int(hdr.Parts) {
		want = append(want, fsys["ksu/"+PartName(i)].Data...)
	}
	if !bytes.Equal(payload, want) {
		t.Fatalf("ArchiveReader read %d bytes, want the %d bytes of %d parts", len(payload), len(want), hdr.Parts)
	}
	if uint64(len(payload)) != hdr.CompressedSize {
		t.Fatalf("ArchiveReader read %d bytes, the header records %d", len(payload), hdr.CompressedSize)
	}
	if sum := crc32.Checksum(payload, castagnoli); sum != hdr.Checksum {
		t.Fatalf("payload CRC-32C is %08x, the header records %08x", sum, hdr.Checksum)
	}
}

// TestArchiveHeaderHugeClaims checks that a header that claims the
// largest archive it can describe costs no memory of that size: OpenCPIO
// rejects it on the first part whose size disagrees.
func TestArchiveHeaderHugeClaims(t *testing.T) {
	h := ArchiveHeader{Version: ArchiveVersion, KernelRelease: "6.1", Size: 1<<64 - 1,
		CompressedSize: maxParts * MaxPartSize, PartSize: MaxPartSize, Parts: maxParts}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(%+v) = %v", h, err)
	}
	fsys := fstest.MapFS{"ksu/" + HeaderName: {Data: b}, "ksu/" + PartName(0): {Data: []byte("x")}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = OpenCPIO(fsys, "ksu")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("OpenCPIO(header of %d parts) = %v, want an ErrTruncated error", maxParts, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("OpenCPIO(header of %d parts) allocated %d bytes, want under 1 MiB", maxParts, grew)
	}
}
