package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// shmDir returns a new directory on the /dev/shm tmpfs, whose mount
// point the entries name.
func shmDir(t *testing.T) string {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("skipping: /dev/shm is not a tmpfs")
	}
	dir, err := os.MkdirTemp("/dev/shm", "ksu-restore-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Remove(dir); err != nil { // the restore creates it
		t.Fatal(err)
	}
	return dir
}

func TestTakePathRecreates(t *testing.T) {
	dir := shmDir(t)
	var st unix.Stat_t
	if err := unix.Stat("/dev/shm", &st); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1700000000, 123456789)
	entries := []*snapshot.PathEntry{
		{Path: "/dev/shm", Mount: "/dev/shm", Mode: st.Mode, UID: st.Uid, GID: st.Gid},
		{Path: dir, Mount: "/dev/shm", Mode: unix.S_IFDIR | 0o1750, PIDs: []uint32{5}, ModTime: mtime, Dev: 1, Inode: 2},
		{Path: dir + "/data", Mount: "/dev/shm", Mode: unix.S_IFREG | 0o640, Size: 3, Data: []byte("abc"),
			ModTime: mtime, PIDs: []uint32{5}, Dev: 1, Inode: 3},
		{Path: dir + "/sparse", Mount: "/dev/shm", Mode: unix.S_IFREG | 0o600, Size: 64 << 20, PIDs: []uint32{5}},
		{Path: dir + "/sparse", Mount: "/dev/shm", Offset: 40 << 20, Data: []byte("x")},
		{Path: "/tmp/kept", Mode: unix.S_IFREG | 0o600},
	}

	rs := &restorer{paths: newPathState()}
	for _, e := range entries {
		rs.takePath(e)
	}
	rs.finishPathTimes()

	if len(rs.paths.errs) != 0 {
		t.Fatalf("takePath errors = %v, want none", rs.paths.errs)
	}
	// /dev/shm was there already, so it is present, not created.
	want := PathStats{Dirs: 1, Files: 2, Bytes: 4, Present: 1, Kept: []string{"/tmp/kept"}}
	if got := rs.paths.stats; !equalStats(got, want) {
		t.Errorf("stats = %+v, want %+v", got, want)
	}

	checkPath(t, dir, unix.S_IFDIR|0o1750, mtime)
	checkPath(t, dir+"/data", unix.S_IFREG|0o640, mtime)
	if b, _ := os.ReadFile(dir + "/data"); string(b) != "abc" {
		t.Errorf("content of data = %q, want %q", b, "abc")
	}

	if err := unix.Stat(dir+"/sparse", &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 64<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("sparse: size %d, %d bytes allocated, want %d and at most 1 MiB", st.Size, st.Blocks*512, 64<<20)
	}
	b := make([]byte, 2)
	f, _ := os.Open(dir + "/sparse")
	defer f.Close()
	if _, err := f.ReadAt(b, 40<<20); err != nil || !bytes.Equal(b, []byte("x\x00")) {
		t.Errorf("sparse at 40 MiB = %q, %v, want %q", b, err, "x\x00")
	}
	if err := unix.Stat(dir+"/data", &st); err != nil {
		t.Fatal(err)
	}
	if got := rs.paths.inodes[fileID{1, 3}]; got != (fileID{st.Dev, st.Ino}) {
		t.Errorf("identity of data maps to %+v, want %+v", got, fileID{st.Dev, st.Ino})
	}
}

func TestTakePathFailsUsers(t *testing.T) {
	dir := shmDir(t)
	notTmpfs := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(notTmpfs, &fs); err != nil || fs.Type == unix.TMPFS_MAGIC {
		t.Skip("skipping: the test's temporary directory is on a tmpfs")
	}
	if err := os.WriteFile(dir, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := shmDir(t)
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	rs := &restorer{paths: newPathState()}
	for _, e := range []*snapshot.PathEntry{
		{Path: dir, Mount: "/dev/shm", Mode: unix.S_IFDIR | 0o755, PIDs: []uint32{5, 6}},
		{Path: dir + "/f", Mount: "/dev/shm", Mode: unix.S_IFREG | 0o600, Data: []byte("x"), Size: 1, PIDs: []uint32{6}},
		{Path: notTmpfs + "/x", Mount: notTmpfs, Mode: unix.S_IFDIR | 0o755, PIDs: []uint32{7}},
		// A directory of the /dev/shm tmpfs named as a mount point.
		{Path: sub + "/y", Mount: sub, Mode: unix.S_IFDIR | 0o755, PIDs: []uint32{9}},
	} {
		rs.takePath(e)
	}
	for pid, want := range map[int32]string{5: "exists with mode", 6: "exists with mode", 7: "not a tmpfs", 9: "not a tmpfs mount point"} {
		err := rs.paths.errs[pid]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error of process %d = %v, want one containing %q", pid, err, want)
		}
	}
	if _, ok := rs.paths.errs[8]; ok {
		t.Errorf("process 8 uses no path but has an error")
	}
	if _, err := os.Stat(filepath.Join(notTmpfs, "x")); err == nil {
		t.Errorf("takePath created %s/x on a filesystem that is not a tmpfs", notTmpfs)
	}
}

func equalStats(a, b PathStats) bool {
	return a.Dirs == b.Dirs && a.Files == b.Files && a.Bytes == b.Bytes && a.Present == b.Present &&
		strings.Join(a.Kept, ",") == strings.Join(b.Kept, ",")
}

func checkPath(t *testing.T, path string, mode uint32, mtime time.Time) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != mode {
		t.Errorf("%s: mode %#o, want %#o", path, st.Mode, mode)
	}
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
		t.Errorf("%s: modified %v, want %v", path, got, mtime)
	}
}
