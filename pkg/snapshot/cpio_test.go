package snapshot

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cavaliercoder/go-cpio"
	"github.com/google/go-cmp/cmp"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// cpioEntry is one entry of an archive as go-cpio reads it back.
type cpioEntry struct {
	Name string
	Mode cpio.FileMode
	Size int64
}

// extractCPIO parses a newc archive with go-cpio and returns its entries
// in order and its files as an fs.FS.
func extractCPIO(t testing.TB, archive []byte) ([]cpioEntry, fstest.MapFS) {
	t.Helper()
	r := cpio.NewReader(bytes.NewReader(archive))
	fsys := fstest.MapFS{}
	var entries []cpioEntry
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return entries, fsys
		}
		if err != nil {
			t.Fatalf("cpio Next() after %d entries = %v", len(entries), err)
		}
		entries = append(entries, cpioEntry{h.Name, h.Mode, h.Size})
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("cpio read %s = %v", h.Name, err)
		}
		mode := fs.FileMode(h.Mode.Perm())
		if h.Mode.IsDir() {
			mode |= fs.ModeDir
		}
		fsys[h.Name] = &fstest.MapFile{Data: data, Mode: mode}
	}
}

func wantEntries(dir string, partSizes ...int64) []cpioEntry {
	var want []cpioEntry
	parts := strings.Split(dir, "/")
	for i := range parts {
		want = append(want, cpioEntry{strings.Join(parts[:i+1], "/"), dirMode, 0})
	}
	for i, n := range partSizes {
		want = append(want, cpioEntry{dir + "/" + PartName(i), fileMode, n})
	}
	return append(want, cpioEntry{dir + "/" + HeaderName, fileMode, int64(archiveFixedSize + len("6.1.0-50-cloud-amd64") + checksumSize)})
}

func readArchive(t *testing.T, fsys fs.FS, dir string) (ArchiveHeader, []byte) {
	t.Helper()
	ar, err := OpenCPIO(fsys, dir)
	if err != nil {
		t.Fatalf("OpenCPIO(%q) = %v, want nil error", dir, err)
	}
	defer ar.Close()
	got, err := io.ReadAll(ar)
	if err != nil {
		t.Fatalf("reading the archive payload = %v, want nil error", err)
	}
	return ar.Header(), got
}

func TestWriteCPIOParts(t *testing.T) {
	const partSize = 4096
	for _, tt := range []struct {
		name  string
		size  int
		parts []int64
	}{
		{"empty", 0, []int64{0}},
		{"one byte", 1, []int64{1}},
		{"part minus one", partSize - 1, []int64{partSize - 1}},
		{"exactly one part", partSize, []int64{partSize}},
		{"part plus one", partSize + 1, []int64{partSize, 1}},
		{"three full parts", 3 * partSize, []int64{partSize, partSize, partSize}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payload := randomBytes(tt.size, uint64(tt.size))
			in := ArchiveHeader{KernelRelease: "6.1.0-50-cloud-amd64", Size: 12345, CompressedSize: uint64(tt.size), PartSize: partSize}
			var buf bytes.Buffer
			hdr, err := WriteCPIO(&buf, "ksu", in, bytes.NewReader(payload))
			if err != nil {
				t.Fatalf("WriteCPIO() = %v, want nil error", err)
			}
			entries, fsys := extractCPIO(t, buf.Bytes())
			if diff := cmp.Diff(wantEntries("ksu", tt.parts...), entries); diff != "" {
				t.Errorf("archive entries mismatch (-want +got):\n%s", diff)
			}
			gotHdr, got := readArchive(t, fsys, "ksu")
			if diff := cmp.Diff(hdr, gotHdr); diff != "" {
				t.Errorf("Header() mismatch (-written +read):\n%s", diff)
			}
			if gotHdr.Parts != uint32(len(tt.parts)) || gotHdr.Size != 12345 || gotHdr.Version != ArchiveVersion {
				t.Errorf("Header() = %+v, want %d parts, size 12345, version %d", gotHdr, len(tt.parts), ArchiveVersion)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("payload read back differs from the %d bytes written", len(payload))
			}
		})
	}
}

func TestWriteCPIOPayloadLength(t *testing.T) {
	for _, tt := range []struct {
		name     string
		claimed  uint64
		actual   int
		wantText string
	}{
		{"payload shorter", 100, 99, "payload ends 99 bytes into the part"},
		{"payload longer", 100, 101, "payload is longer than the 100 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hdr := ArchiveHeader{CompressedSize: tt.claimed}
			_, err := WriteCPIO(io.Discard, "ksu", hdr, bytes.NewReader(make([]byte, tt.actual)))
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("WriteCPIO(CompressedSize %d, %d-byte payload) = %v, want an error containing %q",
					tt.claimed, tt.actual, err, tt.wantText)
			}
		})
	}
}

func TestWriteCPIORejectsBadDir(t *testing.T) {
	for _, dir := range []string{"", "/ksu", "ksu/", "../ksu", ".", "a//b"} {
		if _, err := WriteCPIO(io.Discard, dir, ArchiveHeader{}, bytes.NewReader(nil)); err == nil {
			t.Errorf("WriteCPIO(dir %q) = nil error, want an error", dir)
		}
	}
}

// streamArchive writes payload through a CPIOWriter into a file that
// already holds prefix, in writes of chunk bytes, and returns the file's
// content.
func streamArchive(t *testing.T, prefix, payload []byte, partSize uint64, chunk int) ([]byte, ArchiveHeader) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "initramfs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(prefix); err != nil {
		t.Fatal(err)
	}
	cw, err := NewCPIOWriter(f, "ksu/snap", partSize)
	if err != nil {
		t.Fatalf("NewCPIOWriter() = %v, want nil error", err)
	}
	for p := payload; len(p) > 0; p = p[min(chunk, len(p)):] {
		if n, err := cw.Write(p[:min(chunk, len(p))]); err != nil || n != min(chunk, len(p)) {
			t.Fatalf("CPIOWriter.Write(%d bytes) = %d, %v, want %d, nil", min(chunk, len(p)), n, err, min(chunk, len(p)))
		}
	}
	hdr, err := cw.Finish(ArchiveHeader{KernelRelease: "6.1.0-50-cloud-amd64", Size: 777})
	if err != nil {
		t.Fatalf("CPIOWriter.Finish() = %v, want nil error", err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b, hdr
}

func TestCPIOWriterStreams(t *testing.T) {
	const partSize = 1000
	for _, tt := range []struct {
		name   string
		prefix int
		size   int
		chunk  int
		parts  []int64
	}{
		{"empty payload", 0, 0, 1, []int64{0}},
		{"unaligned prefix", 3, 10, 4, []int64{10}},
		{"exact part", 4, partSize, 7, []int64{partSize}},
		{"parts in one write", 5, 2*partSize + 1, 1 << 20, []int64{partSize, partSize, 1}},
		{"parts in small writes", 6, 3*partSize - 1, 333, []int64{partSize, partSize, partSize - 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payload := randomBytes(tt.size, 7)
			b, hdr := streamArchive(t, bytes.Repeat([]byte{'x'}, tt.prefix), payload, partSize, tt.chunk)
			start := (tt.prefix + 3) &^ 3
			if !bytes.Equal(b[tt.prefix:start], make([]byte, start-tt.prefix)) {
				t.Errorf("bytes between the prefix and the archive = %x, want zeros", b[tt.prefix:start])
			}
			entries, fsys := extractCPIO(t, b[start:])
			if diff := cmp.Diff(wantEntries("ksu/snap", tt.parts...), entries); diff != "" {
				t.Errorf("archive entries mismatch (-want +got):\n%s", diff)
			}
			gotHdr, got := readArchive(t, fsys, "ksu/snap")
			if diff := cmp.Diff(hdr, gotHdr); diff != "" {
				t.Errorf("Header() mismatch (-written +read):\n%s", diff)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("payload read back differs from the %d bytes written", len(payload))
			}
		})
	}
}

// TestCPIOExtractsWithGNUCpio unpacks an archive with GNU cpio, a second
// newc implementation besides go-cpio, then reads it from the directory.
func TestCPIOExtractsWithGNUCpio(t *testing.T) {
	bin, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("skipping: GNU cpio is not installed (apt-get install cpio)")
	}
	payload := randomBytes(10000, 3)
	var buf bytes.Buffer
	hdr := ArchiveHeader{KernelRelease: "6.12.117+deb12-cloud-amd64", Size: 1, CompressedSize: uint64(len(payload)), PartSize: 4096}
	if _, err := WriteCPIO(&buf, "ksu", hdr, bytes.NewReader(payload)); err != nil {
		t.Fatalf("WriteCPIO() = %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "-i", "--quiet", "--make-directories", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i = %v: %s", err, out)
	}
	_, got := readArchive(t, os.DirFS(dir), "ksu")
	if !bytes.Equal(got, payload) {
		t.Errorf("payload read back after GNU cpio differs from the %d bytes written", len(payload))
	}
}

// archiveFS returns a directory with a valid three-part archive of
// payload, for damage tests.
func archiveFS(t *testing.T, payload []byte) fstest.MapFS {
	t.Helper()
	var buf bytes.Buffer
	hdr := ArchiveHeader{KernelRelease: "6.1.0-50-cloud-amd64", CompressedSize: uint64(len(payload)), PartSize: 4096}
	if _, err := WriteCPIO(&buf, "ksu", hdr, bytes.NewReader(payload)); err != nil {
		t.Fatalf("WriteCPIO() = %v", err)
	}
	_, fsys := extractCPIO(t, buf.Bytes())
	return fsys
}

func TestArchiveReaderDamage(t *testing.T) {
	payload := randomBytes(10000, 9)
	for _, tt := range []struct {
		name     string
		damage   func(fstest.MapFS)
		openErr  bool // OpenCPIO fails, rather than reading
		wantIs   error
		wantText string
	}{
		{"missing part", func(m fstest.MapFS) { delete(m, "ksu/snapshot.001") }, true, fs.ErrNotExist, "snapshot.001"},
		{"short part", func(m fstest.MapFS) { m["ksu/snapshot.002"].Data = m["ksu/snapshot.002"].Data[1:] }, true, ErrTruncated, "snapshot.002"},
		{"flipped payload byte", func(m fstest.MapFS) { m["ksu/snapshot.001"].Data[17] ^= 1 }, false, ErrChecksum, "payload CRC-32C"},
		{"missing header", func(m fstest.MapFS) { delete(m, "ksu/snapshot.hdr") }, true, fs.ErrNotExist, "snapshot.hdr"},
		{"flipped header byte", func(m fstest.MapFS) { m["ksu/snapshot.hdr"].Data[13] ^= 1 }, true, ErrChecksum, "archive header CRC-32C"},
		{"header too long", func(m fstest.MapFS) {
			m["ksu/snapshot.hdr"].Data = append(m["ksu/snapshot.hdr"].Data, make([]byte, 200)...)
		}, true, ErrTooLarge, "longer than"},
		{"header cut", func(m fstest.MapFS) { m["ksu/snapshot.hdr"].Data = m["ksu/snapshot.hdr"].Data[:20] }, true, ErrTruncated, "want at least"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fsys := archiveFS(t, payload)
			tt.damage(fsys)
			ar, err := OpenCPIO(fsys, "ksu")
			if err == nil {
				if tt.openErr {
					t.Fatalf("OpenCPIO() = nil error, want an error")
				}
				_, err = io.ReadAll(ar)
				ar.Close()
			} else if !tt.openErr {
				t.Fatalf("OpenCPIO() = %v, want nil error and a failing Read", err)
			}
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error = %v, want one that is %v and contains %q", err, tt.wantIs, tt.wantText)
			}
		})
	}
}

func TestVerifyCPIO(t *testing.T) {
	payload := randomBytes(10000, 11)
	fsys := archiveFS(t, payload)
	if _, err := VerifyCPIO(fsys, "ksu"); err != nil {
		t.Errorf("VerifyCPIO(intact) = %v, want nil error", err)
	}
	fsys["ksu/snapshot.000"].Data[0] ^= 0x80
	if _, err := VerifyCPIO(fsys, "ksu"); !errors.Is(err, ErrChecksum) {
		t.Errorf("VerifyCPIO(flipped bit) = %v, want an ErrChecksum error", err)
	}
}

func TestArchiveHeaderVersion(t *testing.T) {
	h := ArchiveHeader{Version: ArchiveVersion, KernelRelease: "6.1", PartSize: 10, Parts: 1}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary() = %v", err)
	}
	b[8] = 2
	var got ArchiveHeader
	err = got.UnmarshalBinary(b)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Major != 2 || ve.Format != "archive" {
		t.Errorf("UnmarshalBinary(version 2) = %v, want a *VersionError for archive version 2", err)
	}
}

func TestArchiveHeaderRejects(t *testing.T) {
	valid := ArchiveHeader{Version: ArchiveVersion, KernelRelease: "6.1", CompressedSize: 25, PartSize: 10, Parts: 3}
	for _, tt := range []struct {
		name string
		edit func(*ArchiveHeader)
	}{
		{"zero part size", func(h *ArchiveHeader) { h.PartSize = 0 }},
		{"part size over newc limit", func(h *ArchiveHeader) { h.PartSize = MaxPartSize + 1 }},
		{"too few parts", func(h *ArchiveHeader) { h.Parts = 2 }},
		{"too many parts", func(h *ArchiveHeader) { h.Parts = 4 }},
		{"over the part limit", func(h *ArchiveHeader) { h.CompressedSize = 1001 * 10; h.Parts = 1001 }},
		{"long release", func(h *ArchiveHeader) { h.KernelRelease = strings.Repeat("r", 65) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := valid
			tt.edit(&h)
			if _, err := h.MarshalBinary(); err == nil {
				t.Errorf("MarshalBinary(%+v) = nil error, want an error", h)
			}
		})
	}
	if _, err := valid.MarshalBinary(); err != nil {
		t.Errorf("MarshalBinary(%+v) = %v, want nil error", valid, err)
	}
}

// TestSnapshotThroughCPIO runs the whole path: a snapshot written through
// a CPIOWriter, unpacked, and read back with the archive header's size.
func TestSnapshotThroughCPIO(t *testing.T) {
	want := filledContents(fillMax)
	f, err := os.Create(filepath.Join(t.TempDir(), "initramfs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	cw, err := NewCPIOWriter(f, "ksu", 256)
	if err != nil {
		t.Fatalf("NewCPIOWriter() = %v", err)
	}
	sw := writeContentsTo(t, cw, want, WriterOptions{})
	hdr, err := cw.Finish(ArchiveHeader{KernelRelease: want.Meta.KernelRelease, Size: uint64(sw.Size())})
	if err != nil {
		t.Fatalf("Finish() = %v", err)
	}
	if hdr.Parts < 2 {
		t.Errorf("Finish() header has %d parts, want at least 2 so the join is tested", hdr.Parts)
	}

	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	_, fsys := extractCPIO(t, b)
	ar, err := OpenCPIO(fsys, "ksu")
	if err != nil {
		t.Fatalf("OpenCPIO() = %v", err)
	}
	defer ar.Close()

	r, err := NewReader(ar, ReaderOptions{Size: int64(ar.Header().Size)})
	if err != nil {
		t.Fatalf("NewReader() = %v", err)
	}
	defer r.Close()
	got, err := readContents(r)
	if err != nil {
		t.Fatalf("reading the snapshot = %v", err)
	}
	if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
		t.Errorf("snapshot through cpio mismatch (-want +got):\n%s", diff)
	}
}
