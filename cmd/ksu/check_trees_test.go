package main

import (
	"crypto/rand"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckTreeNamesFD checks that ksu check names an fd that the dump
// would reject, found by the dump's own checks: an inotify instance that
// the child inherits as fd 3.
func TestCheckTreeNamesFD(t *testing.T) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("skipping: inotify_init1: %v", err)
	}
	inotify := os.NewFile(uintptr(ifd), "inotify")
	defer inotify.Close()
	pid := startHolding(t, nil, inotify)

	trees := checkTreesDetail([]int{pid})

	if len(trees) != 1 {
		t.Fatalf("checkTreesDetail(%d) returned %d trees, want 1", pid, len(trees))
	}
	if trees[0].Preservable {
		t.Errorf("checkTreesDetail(%d).Preservable = true, want false", pid)
	}
	var found bool
	for _, b := range trees[0].Blockers {
		if b.PID == pid && b.Object == "fd 3" && b.Kind == "inotify" {
			found = true
		}
	}
	if !found {
		t.Errorf("checkTreesDetail(%d) blockers = %+v, want fd 3 (inotify)", pid, trees[0].Blockers)
	}
}

func TestAppendNewBlockers(t *testing.T) {
	a := blocker{PID: 7, Object: "root /srv", Kind: "chroot", Hint: "run the service without chroot"}
	b := blocker{PID: 7, Object: "fd 3", Kind: "inotify"}

	got := appendNew([]blocker{a}, blocker{PID: 7, Object: "root /srv", Kind: "chroot"}, b)

	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("appendNew() = %+v, want [%+v %+v]", got, a, b)
	}
}

// TestCheckTreeSharedBytes checks that the estimate counts the content
// that the snapshot carries once per file: a memfd, a file on a tmpfs
// and a deleted file, which a child holds open, the first twice.
func TestCheckTreeSharedBytes(t *testing.T) {
	const size = 4 << 20
	memfd, err := unix.MemfdCreate("ksu-check-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Skipf("skipping: memfd_create: %v", err)
	}
	mem := os.NewFile(uintptr(memfd), "memfd")
	defer mem.Close()
	tmp := tmpfsFile(t)
	deleted, err := os.CreateTemp(t.TempDir(), "deleted")
	if err != nil {
		t.Fatal(err)
	}
	defer deleted.Close()
	if err := os.Remove(deleted.Name()); err != nil {
		t.Fatal(err)
	}
	// Random bytes, which no filesystem compresses below their size.
	data := make([]byte, size)
	rand.Read(data)
	for _, f := range []*os.File{mem, tmp, deleted} {
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := deleted.Sync(); err != nil {
		t.Fatal(err)
	}
	pid := startHolding(t, nil, mem, mem, tmp, deleted)

	trees := checkTreesDetail([]int{pid})

	if len(trees) != 1 {
		t.Fatalf("checkTreesDetail(%d) returned %d trees, want 1", pid, len(trees))
	}
	if got, want := trees[0].SharedBytes, uint64(3*size); got < want || got >= want+size/2 {
		t.Errorf("checkTreesDetail(%d).SharedBytes = %d, want about %d", pid, got, want)
	}
	if got, want := trees[0].SnapshotBytes, trees[0].SharedBytes; got <= want {
		t.Errorf("checkTreesDetail(%d).SnapshotBytes = %d, want more than SharedBytes %d", pid, got, want)
	}
}

// tmpfsFile creates a file in /dev/shm, or skips the test if /dev/shm is
// not a tmpfs. The file is removed when the test ends.
func tmpfsFile(t *testing.T) *os.File {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("skipping: /dev/shm is not a tmpfs")
	}
	f, err := os.CreateTemp("/dev/shm", "ksu-check-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		os.Remove(f.Name())
	})
	return f
}

// TestObjectBytesSharedMapping checks that objectBytes counts a
// MAP_SHARED|MAP_ANONYMOUS mapping of the test process, found through
// /proc/PID/map_files, once however often it is seen.
func TestObjectBytesSharedMapping(t *testing.T) {
	const size = 8 << 20
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for i := 0; i < size; i += 4096 {
		mem[i] = 1
	}
	pid := os.Getpid()
	seen := map[objectKey]bool{}

	first := objectBytes([]int{pid}, seen)
	again := objectBytes([]int{pid}, seen)

	if first < size {
		t.Errorf("objectBytes(%d) = %d, want at least the %d bytes of the shared mapping", pid, first, size)
	}
	if again != 0 {
		t.Errorf("objectBytes(%d) with every file seen = %d, want 0", pid, again)
	}
}
