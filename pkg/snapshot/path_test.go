package snapshot

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPathEntryRoundTrip(t *testing.T) {
	entries := []*PathEntry{
		{Path: "/run", Mount: "/run", Mode: 0o40755},
		{Path: "/run/app", Mount: "/run", Mode: 0o41777, UID: 1000, GID: 1000,
			ModTime: time.Unix(1700000000, 5), PIDs: []uint32{7, 4194304}},
		{Path: "/run/app/data", Mount: "/run", Mode: 0o100640, Size: 6,
			Data: []byte("hello\n"), PIDs: []uint32{7}, Dev: 0x2d, Inode: 1 << 63},
		{Path: "/run/app/data", Mount: "/run", Offset: 1 << 40, Data: []byte{0}},
		{Path: "/tmp/app.sock", Mode: 0o140777, ModTime: time.Unix(0, 0)},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{})
	if err != nil {
		t.Fatalf("NewWriter() = %v", err)
	}
	if err := w.WriteMeta(testMeta()); err != nil {
		t.Fatalf("WriteMeta() = %v, want nil error", err)
	}
	for _, e := range entries {
		if err := w.WritePath(e); err != nil {
			t.Fatalf("WritePath(%q) = %v, want nil error", e.Path, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil error", err)
	}
	got := readPaths(t, &buf)
	if diff := cmp.Diff(entries, got); diff != "" {
		t.Errorf("path entries mismatch (-want +got):\n%s", diff)
	}
}

func readPaths(t *testing.T, r io.Reader) []*PathEntry {
	t.Helper()
	rd, err := NewReader(r, ReaderOptions{})
	if err != nil {
		t.Fatalf("NewReader() = %v", err)
	}
	defer rd.Close()
	var got []*PathEntry
	for {
		s, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("Next() = %v, want nil error", err)
		}
		if s.Type != SectionPath {
			continue
		}
		p, err := s.Path()
		if err != nil {
			t.Fatalf("Path() = %v, want nil error", err)
		}
		got = append(got, p)
	}
}

func TestWritePathRejects(t *testing.T) {
	for _, tt := range []struct {
		name  string
		entry PathEntry
	}{
		{"relative path", PathEntry{Path: "run/x", Mount: "/run"}},
		{"empty path", PathEntry{}},
		{"data outside a tmpfs", PathEntry{Path: "/tmp/x", Data: []byte("x")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(io.Discard, WriterOptions{})
			if err != nil {
				t.Fatalf("NewWriter() = %v", err)
			}
			defer w.Close()
			if err := w.WriteMeta(testMeta()); err != nil {
				t.Fatalf("WriteMeta() = %v, want nil error", err)
			}
			if err := w.WritePath(&tt.entry); err == nil {
				t.Errorf("WritePath(%+v) = nil, want an error", tt.entry)
			}
		})
	}
}
