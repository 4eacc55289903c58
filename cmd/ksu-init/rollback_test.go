package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/ksu-project/ksu/pkg/kexec"
)

func TestRollbackReason(t *testing.T) {
	for _, tt := range []struct {
		name       string
		res        restoreResult
		runErr     error
		wantReason string
		want       bool
	}{
		{"restored", restoreResult{Restored: true, Resumed: true}, nil, "", false},
		{"tree failed before any resume", restoreResult{Error: "process tree 7 (clock): boom", AllOrNothing: true},
			nil, "process tree 7 (clock): boom", true},
		{"failed after the resume", restoreResult{Error: "resume restored tasks: boom", Resumed: true}, nil, "", false},
		{"failed after connections left repair", restoreResult{Error: "boom", ConnectionsRebuilt: true}, nil, "", false},
		{"no result from the restorer", restoreResult{}, errors.New("restore timed out"), "", false},
		{"failed without a message", restoreResult{}, nil, "restore failed without a reason", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reason, ok := rollbackReason(tt.res, tt.runErr)
			if reason != tt.wantReason || ok != tt.want {
				t.Errorf("rollbackReason(%+v, %v) = %q, %v, want %q, %v", tt.res, tt.runErr, reason, ok, tt.wantReason, tt.want)
			}
		})
	}
}

func TestRollbackReady(t *testing.T) {
	root := t.TempDir()
	if rollbackReady(root) {
		t.Errorf("rollbackReady(%s) = true for an empty root, want false", root)
	}
	writeRollbackFiles(t, root, []byte("base"))
	if !rollbackReady(root) {
		t.Errorf("rollbackReady(%s) = false with every file, want true", root)
	}
	if err := os.Remove(filepath.Join(root, kexec.RollbackCmdline)); err != nil {
		t.Fatal(err)
	}
	if rollbackReady(root) {
		t.Errorf("rollbackReady(%s) = true without the command line, want false", root)
	}
}

// writeRollbackFiles writes the files ksu update puts under
// kexec.RollbackDir into root, with base as the old kernel's initramfs.
func writeRollbackFiles(t *testing.T, root string, base []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, kexec.RollbackDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		kexec.RollbackKernel:  []byte("bzImage"),
		kexec.RollbackInitrd:  base,
		kexec.RollbackCmdline: []byte("root=/dev/vda panic=10\n"),
	} {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAssembleRollbackInitrd(t *testing.T) {
	root := t.TempDir()
	base := []byte("old initramfs") // 13 bytes: the archive after it starts at 16
	writeRollbackFiles(t, root, base)
	snapshot := map[string]string{"ksu/snapshot.hdr": "header", "ksu/snapshot.000": "part zero", "ksu/snapshot.001": "part one"}
	if err := os.Mkdir(filepath.Join(root, "ksu"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range snapshot {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	note := rollbackNote{FromKernel: "6.12.0-new", Reason: "boom", Failures: []failure{{Root: 7, PIDs: []int32{7}, Reason: "boom"}}}

	var buf bytes.Buffer
	if err := assembleRollbackInitrd(&buf, root, note); err != nil {
		t.Fatalf("assembleRollbackInitrd(%s) = %v", root, err)
	}
	if got := buf.Bytes()[:len(base)]; !bytes.Equal(got, base) {
		t.Errorf("initramfs starts with %q, want the old kernel's %q", got, base)
	}
	if pad := buf.Bytes()[len(base):16]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Errorf("padding after the base = %q, want zeros", pad)
	}
	files := readArchive(t, bytes.NewReader(buf.Bytes()[16:]))

	noteName := strings.TrimPrefix(kexec.RolledBackNote, "/")
	var gotNote rollbackNote
	if err := json.Unmarshal([]byte(files[noteName]), &gotNote); err != nil {
		t.Fatalf("decode %s %q: %v", noteName, files[noteName], err)
	}
	if diff := cmp.Diff(note, gotNote); diff != "" {
		t.Errorf("rollback note mismatch (-want +got):\n%s", diff)
	}
	delete(files, noteName)
	if diff := cmp.Diff(snapshot, files); diff != "" {
		t.Errorf("snapshot files in the rollback initramfs mismatch (-want +got):\n%s", diff)
	}
}

// readArchive returns the regular files of the newc archive in r.
func readArchive(t *testing.T, r io.ReaderAt) map[string]string {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(r))
	if err != nil {
		t.Fatalf("read rollback archive: %v", err)
	}
	files := map[string]string{}
	for _, rec := range recs {
		if rec.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
		if err != nil {
			t.Fatalf("read %s: %v", rec.Name, err)
		}
		files[rec.Name] = string(data)
	}
	return files
}

func TestReadRollbackNote(t *testing.T) {
	root := t.TempDir()
	note, err := readRollbackNote(root)
	if note != nil || err != nil {
		t.Errorf("readRollbackNote(%s) = %+v, %v without a note, want nil, nil", root, note, err)
	}
	want := rollbackNote{FromKernel: "6.12.0-new", Reason: "boom"}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, kexec.RolledBackNote), data, 0o600); err != nil {
		t.Fatal(err)
	}
	note, err = readRollbackNote(root)
	if err != nil {
		t.Fatalf("readRollbackNote(%s) = %v", root, err)
	}
	if diff := cmp.Diff(&want, note); diff != "" {
		t.Errorf("readRollbackNote(%s) mismatch (-want +got):\n%s", root, diff)
	}
}
