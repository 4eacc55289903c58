package dump

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

func TestPathChain(t *testing.T) {
	for _, tt := range []struct {
		mount, path string
		want        []string
	}{
		{"/run", "/run", []string{"/run"}},
		{"/run", "/run/a/b", []string{"/run", "/run/a", "/run/a/b"}},
		{"/", "/tmp/x", []string{"/", "/tmp", "/tmp/x"}},
	} {
		if got := pathChain(tt.mount, tt.path); !cmp.Equal(got, tt.want) {
			t.Errorf("pathChain(%q, %q) = %q, want %q", tt.mount, tt.path, got, tt.want)
		}
	}
}

func TestMountOf(t *testing.T) {
	mounts := []procfs.Mount{
		{MountPoint: "/", FSType: "ext4"},
		{MountPoint: "/run", FSType: "tmpfs"},
		{MountPoint: "/run/user/0", FSType: "tmpfs", Source: "first"},
		{MountPoint: "/run/user/0", FSType: "tmpfs", Source: "on top"},
		{MountPoint: "/dev", FSType: "devtmpfs"},
	}
	for _, tt := range []struct {
		path, want, source string
	}{
		{"/run/x", "/run", ""},
		{"/run", "/run", ""},
		{"/runner", "/", ""},
		{"/run/user/0/app", "/run/user/0", "on top"},
		{"/dev/null", "/dev", ""},
	} {
		m, ok := mountOf(mounts, tt.path)
		if !ok || m.MountPoint != tt.want || m.Source != tt.source {
			t.Errorf("mountOf(%q) = %q %q %v, want %q %q", tt.path, m.MountPoint, m.Source, ok, tt.want, tt.source)
		}
	}
}

func TestProcessPaths(t *testing.T) {
	files := map[uint64]*snapshot.File{
		1: {ID: 1, Kind: snapshot.FileRegular, Ref: snapshot.FileRef{Path: "/run/a/data"}},
		2: {ID: 2, Kind: snapshot.FileUnixSocket, Ref: snapshot.FileRef{Path: "/run/a/sock"}},
		3: {ID: 3, Kind: snapshot.FileTCPSocket},
		4: {ID: 4, Kind: snapshot.FileRegular, Ref: snapshot.FileRef{Path: "/dev/shm/x (deleted)"}},
	}
	p := &snapshot.Process{PID: 9, Identity: snapshot.Identity{Cwd: "/run/a"},
		FDs: []snapshot.FD{{Num: 3, File: 1}, {Num: 4, File: 2}, {Num: 5, File: 3}, {Num: 6, File: 4}},
		MM: &snapshot.MM{Exe: snapshot.FileRef{Path: "/usr/bin/app"}, VMAs: []snapshot.VMA{
			{Kind: snapshot.VMAFile, File: snapshot.FileRef{Path: "/dev/shm/seg"}},
			{Kind: snapshot.VMAAnon},
		}},
	}
	want := []pathUse{
		{9, "/run/a", true}, {9, "/run/a/data", true}, {9, "/run/a/sock", false},
		{9, "/dev/shm/x", false}, {9, "/usr/bin/app", true}, {9, "/dev/shm/seg", true},
	}
	got := processPaths(p, files)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(pathUse{})); diff != "" {
		t.Errorf("processPaths() mismatch (-want +got):\n%s", diff)
	}
}

// TestPlanPathsWrite plans the uses of a fake tree on a real tmpfs
// directory and reads the written sections back.
func TestPlanPathsWrite(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("skipping: /dev/shm is not a tmpfs")
	}
	mnt, err := os.MkdirTemp("/dev/shm", "ksu-dump-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(mnt)
	big := bytes.Repeat([]byte("0123456789abcdef"), pathChunk/16+10)
	mustWrite(t, filepath.Join(mnt, "a", "big"), big)
	mustWrite(t, filepath.Join(mnt, "a", "empty"), nil)
	mustWrite(t, filepath.Join(mnt, "systemd", "x"), []byte("x"))
	sparse := filepath.Join(mnt, "a", "sparse")
	mustWrite(t, sparse, nil)
	if err := os.Truncate(sparse, 64<<20); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(sparse, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 40<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mounts := []procfs.Mount{{MountPoint: "/", FSType: "ext4"}, {MountPoint: mnt, FSType: "tmpfs"}}
	tmpfsExcluded = append(tmpfsExcluded, filepath.Join(mnt, "systemd"))
	defer func() { tmpfsExcluded = tmpfsExcluded[:len(tmpfsExcluded)-1] }()

	plan := &pathPlan{entries: map[string]*snapshot.PathEntry{}}
	for _, u := range []pathUse{
		{1, filepath.Join(mnt, "a", "big"), true},
		{2, filepath.Join(mnt, "a", "empty"), true},
		{2, filepath.Join(mnt, "a", "gone.sock"), false},
		{2, sparse, true},
		{2, filepath.Join(mnt, "systemd", "x"), true},
		{2, "/usr/lib/os-release", true},
	} {
		if err := plan.add("", mounts, u); err != nil {
			t.Fatalf("add(%+v) = %v, want nil error", u, err)
		}
	}
	got := writeAndRead(t, plan)
	type short struct {
		Path   string
		Offset uint64
		Len    int
		Size   int64
		PIDs   []uint32
	}
	var gotShort []short
	for _, e := range got {
		gotShort = append(gotShort, short{e.Path, e.Offset, len(e.Data), e.Size, e.PIDs})
	}
	a := filepath.Join(mnt, "a")
	want := []short{
		{mnt, 0, 0, 0, []uint32{1, 2}},
		{a, 0, 0, 0, []uint32{1, 2}},
		{filepath.Join(a, "big"), 0, pathChunk, int64(len(big)), []uint32{1}},
		{filepath.Join(a, "big"), pathChunk, len(big) - pathChunk, 0, nil},
		{filepath.Join(a, "empty"), 0, 0, 0, []uint32{2}},
		// Only the page written in the sparse file is data.
		{sparse, 0, 0, 64 << 20, []uint32{2}},
		{sparse, 40 << 20, 4096, 0, nil},
	}
	if diff := cmp.Diff(want, gotShort); diff != "" {
		t.Errorf("path sections mismatch (-want +got):\n%s", diff)
	}
	var content []byte
	for _, e := range got {
		if e.Path == filepath.Join(a, "big") {
			content = append(content, e.Data...)
		}
	}
	if !bytes.Equal(content, big) {
		t.Errorf("content of big: %d bytes read back, want the %d written", len(content), len(big))
	}
}

func TestPlanKeepsTmpOnDisk(t *testing.T) {
	// root replaces /proc/PID/root, with a tmp directory on disk.
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "tmp", "dir", "f"), []byte("x"))
	mounts := []procfs.Mount{{MountPoint: "/", FSType: "ext4"}}
	plan := &pathPlan{entries: map[string]*snapshot.PathEntry{}}
	for _, u := range []pathUse{{3, "/tmp/dir/f", true}, {4, "/tmp", true}} {
		if err := plan.add(root, mounts, u); err != nil {
			t.Fatalf("add(%+v) = %v, want nil error", u, err)
		}
	}
	e := plan.entries["/tmp/dir/f"]
	if e == nil || e.Mount != "" || e.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("entry of /tmp/dir/f = %+v, want a disk entry of a regular file", e)
	}
	if len(plan.entries) != 1 {
		t.Errorf("plan has %d entries, want only /tmp/dir/f", len(plan.entries))
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func writeAndRead(t *testing.T, plan *pathPlan) []*snapshot.PathEntry {
	t.Helper()
	var buf bytes.Buffer
	sw, err := snapshot.NewWriter(&buf, snapshot.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.WriteMeta(&snapshot.Meta{PageSize: 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := plan.write(sw, func(int32) string { return "" }); err != nil {
		t.Fatalf("write() = %v, want nil error", err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	rd, err := snapshot.NewReader(&buf, snapshot.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []*snapshot.PathEntry
	for {
		s, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.Path()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
}

func TestResolveDir(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(real) // the temporary directory may be below a link too
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "link", "app.sock"), filepath.Join(real, "app.sock")},
		{filepath.Join(dir, "missing", "app.sock"), filepath.Join(dir, "missing", "app.sock")},
	} {
		if got := resolveDir(tt.path); got != tt.want {
			t.Errorf("resolveDir(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
