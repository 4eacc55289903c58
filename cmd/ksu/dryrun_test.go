package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// writeTestArchive writes a snapshot archive with one process and its
// trailer, as ksu update --dry-run does, and returns the file.
func writeTestArchive(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "snapshot.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cw, err := snapshot.NewCPIOWriter(f, "ksu", 64)
	if err != nil {
		t.Fatal(err)
	}
	w, err := snapshot.NewWriter(cw, snapshot.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(&snapshot.Meta{KernelRelease: "6.1.0-50-cloud-amd64", PageSize: 4096}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteProcess(&snapshot.Process{PID: 42, PPID: 1, PGID: 42, SID: 42}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Finish(snapshot.ArchiveHeader{KernelRelease: "6.1.0-50-cloud-amd64"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestVerifySnapshot(t *testing.T) {
	f := writeTestArchive(t)
	fsys, err := indexNewc(f)
	if err != nil {
		t.Fatalf("indexNewc() = %v, want nil error", err)
	}
	if _, ok := fsys.files["ksu/snapshot.hdr"]; !ok {
		t.Errorf("indexNewc() files = %v, want ksu/snapshot.hdr among them", fsys.files)
	}
	if len(fsys.files) < 3 {
		t.Errorf("indexNewc() found %d files, want the header and at least two parts of 64 bytes", len(fsys.files))
	}
	n, err := verifySnapshot(f)
	if err != nil || n != 1 {
		t.Errorf("verifySnapshot() = %d, %v, want 1 section and nil error", n, err)
	}
}

func TestVerifySnapshotDamaged(t *testing.T) {
	f := writeTestArchive(t)
	fsys, err := indexNewc(f)
	if err != nil {
		t.Fatal(err)
	}
	part := fsys.files["ksu/"+snapshot.PartName(0)]
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0xff}, part.offset+20); err != nil {
		t.Fatal(err)
	}
	if n, err := verifySnapshot(f); err == nil {
		t.Errorf("verifySnapshot(damaged part) = %d, nil, want an error", n)
	}
}

func TestIndexNewcRejects(t *testing.T) {
	for _, tt := range []struct {
		name    string
		data    string
		wantErr string
	}{
		{"empty", "", "read cpio header"},
		{"old format", "070707" + strings.Repeat("0", 104), "want newc"},
		{"bad field", "070701" + strings.Repeat("z", 104), "invalid field"},
		{"no trailer", "070701" + strings.Repeat("0", 88) + "00000002" + "00000000" + "a\x00", "read cpio header at offset 112"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := indexNewc(strings.NewReader(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("indexNewc(%q) = %v, want an error containing %q", tt.data, err, tt.wantErr)
			}
		})
	}
}
