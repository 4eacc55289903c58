package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/u-root/u-root/pkg/cpio"
)

// snapshotFS returns the files of a snapshot archive holding payload, as
// the kernel would unpack them, in a MapFS.
func snapshotFS(t testing.TB, payload string) fstest.MapFS {
	t.Helper()
	var buf bytes.Buffer
	hdr := snapshot.ArchiveHeader{KernelRelease: "6.1.0-50-cloud-amd64", Size: 1000, CompressedSize: uint64(len(payload))}
	if _, err := snapshot.WriteCPIO(&buf, "ksu", hdr, strings.NewReader(payload)); err != nil {
		t.Fatalf("WriteCPIO() = %v", err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		fsys[r.Name] = &fstest.MapFile{Data: data}
	}
	return fsys
}

func TestFindSnapshot(t *testing.T) {
	valid := snapshotFS(t, "compressed snapshot bytes")
	damaged := snapshotFS(t, "compressed snapshot bytes")
	part := damaged["ksu/"+snapshot.PartName(0)]
	part.Data = bytes.Replace(part.Data, []byte("bytes"), []byte("BYTES"), 1)

	for _, tt := range []struct {
		name      string
		fsys      fstest.MapFS
		wantFound bool
		wantErr   bool
	}{
		{"none", fstest.MapFS{"ksu/other": &fstest.MapFile{}}, false, false},
		{"valid", valid, true, false},
		{"damaged part", damaged, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hdr, found, err := findSnapshot(tt.fsys, "ksu")
			if found != tt.wantFound || (err != nil) != tt.wantErr {
				t.Fatalf("findSnapshot() = found %t, error %v, want found %t, error %t", found, err, tt.wantFound, tt.wantErr)
			}
			if tt.name == "valid" && hdr.KernelRelease != "6.1.0-50-cloud-amd64" {
				t.Errorf("findSnapshot() header release = %q, want 6.1.0-50-cloud-amd64", hdr.KernelRelease)
			}
		})
	}
}

// FuzzFindSnapshot checks how findSnapshot tells a plain boot from a
// snapshot, for any header and first part, each present or absent. No
// header and no part is a plain boot without an error. A part without a
// header is an error. An accepted snapshot has the length of its part.
func FuzzFindSnapshot(f *testing.F) {
	valid := snapshotFS(f, "compressed snapshot bytes")
	hdr, part := valid["ksu/"+snapshot.HeaderName].Data, valid["ksu/"+snapshot.PartName(0)].Data
	for _, present := range []uint8{0, 1, 2, 3} {
		f.Add(hdr, part, present)
	}
	f.Fuzz(func(t *testing.T, hdr, part []byte, present uint8) {
		fsys := fstest.MapFS{"ksu/other": &fstest.MapFile{}}
		hasHeader, hasPart := present&1 != 0, present&2 != 0
		if hasHeader {
			fsys["ksu/"+snapshot.HeaderName] = &fstest.MapFile{Data: hdr}
		}
		if hasPart {
			fsys["ksu/"+snapshot.PartName(0)] = &fstest.MapFile{Data: part}
		}
		got, found, err := findSnapshot(fsys, "ksu")
		if found != (hasHeader || hasPart) {
			t.Fatalf("findSnapshot(header %t, part %t) = found %t, want %t", hasHeader, hasPart, found, !found)
		}
		if !found && err != nil {
			t.Fatalf("findSnapshot(no archive) = %v, want a plain boot without an error", err)
		}
		if !hasHeader && hasPart && err == nil {
			t.Fatalf("findSnapshot(part without header) = nil error, want an error")
		}
		if err == nil && found && got.CompressedSize != uint64(len(part)) {
			t.Fatalf("findSnapshot() accepted %d payload bytes, the header records %d", len(part), got.CompressedSize)
		}
	})
}
