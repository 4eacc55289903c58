package kexec

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fileInitrdMakers are the two ways to create a file-backed initramfs.
var fileInitrdMakers = []struct {
	name string
	make func(dir string) (*Initrd, error)
}{
	{"O_TMPFILE", NewFileInitrd},
	{"create and unlink", newUnlinkedInitrd},
}

func TestFileInitrdUnnamedWithMode0600(t *testing.T) {
	// A umask that takes the owner's write bit must not narrow the mode.
	old := unix.Umask(0o277)
	defer unix.Umask(old)
	for _, tt := range fileInitrdMakers {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			initrd, err := tt.make(dir)
			if err != nil {
				t.Fatalf("create initramfs file in %s: %v", dir, err)
			}
			defer initrd.Close()
			if got := initrd.Dir(); got != dir {
				t.Errorf("Dir() = %q, want %q", got, dir)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(initrd.f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if got := fs.FileMode(st.Mode & 0o7777); got != SpillMode {
				t.Errorf("mode = %v, want %v", got, SpillMode)
			}
			if st.Nlink != 0 {
				t.Errorf("link count = %d, want 0: the file must have no name", st.Nlink)
			}
			checkDirEmpty(t, dir)
		})
	}
}

func TestFileInitrdWipe(t *testing.T) {
	for _, tt := range fileInitrdMakers {
		for _, loaded := range []bool{false, true} {
			t.Run(tt.name+" loaded="+strconv.FormatBool(loaded), func(t *testing.T) {
				initrd, err := tt.make(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer initrd.Close()
				data := bytes.Repeat([]byte("process memory "), 10_000)
				if _, err := initrd.Write(data); err != nil {
					t.Fatal(err)
				}
				if loaded {
					// Load leaves only a read-only descriptor.
					if _, err := initrd.readOnly(); err != nil {
						t.Fatal(err)
					}
				}
				if err := initrd.Wipe(); err != nil {
					t.Fatalf("Wipe() = %v, want nil", err)
				}
				got, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(initrd.f.Fd())))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(make([]byte, len(data)), got); diff != "" {
					t.Errorf("contents after Wipe mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestFileInitrdErrors(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dir string
		want      error
	}{
		{"missing directory", dir + "/missing", unix.ENOENT},
		{"not a directory", file, unix.ENOTDIR},
	} {
		t.Run(tt.name, func(t *testing.T) {
			initrd, err := NewFileInitrd(tt.dir)
			if err == nil {
				initrd.Close()
			}
			if !errors.Is(err, tt.want) || !strings.Contains(fmtErr(err), tt.dir) {
				t.Errorf("NewFileInitrd(%q) = %v, want %v naming the directory", tt.dir, err, tt.want)
			}
		})
	}
	initrd, err := NewFileInitrd(dir)
	if err != nil {
		t.Fatal(err)
	}
	initrd.Close()
	if err := initrd.Wipe(); err == nil {
		t.Errorf("Wipe() after Close = nil, want an error")
	}
}

// TestIntegrationFileInitrdNoSpace fills a 64 KiB tmpfs: the error must
// name the directory and ENOSPC, and the wipe and close must free it.
func TestIntegrationFileInitrdNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("ksu-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)

	initrd, err := NewFileInitrd(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = initrd.Write(make([]byte, 1<<20))
	want := "write initramfs file in " + dir + ": no space left on device"
	if !errors.Is(err, unix.ENOSPC) || fmtErr(err) != want {
		t.Errorf("Write(1 MiB) = %v, want %q", err, want)
	}
	if got := initrd.Size(); got <= 0 || got > 64<<10 {
		t.Errorf("Size() = %d after ENOSPC, want the bytes written, at most 64 KiB", got)
	}
	if err := initrd.Wipe(); err != nil {
		t.Errorf("Wipe() on a full filesystem = %v, want nil", err)
	}
	if err := initrd.Close(); err != nil {
		t.Fatal(err)
	}
	checkDirEmpty(t, dir)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bfree != st.Blocks {
		t.Errorf("tmpfs has %d of %d blocks free after Close, want all", st.Bfree, st.Blocks)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func checkDirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("directory %s has %d entries, want none: first %s", dir, len(entries), entries[0].Name())
	}
}

func TestWipeFileAfterClose(t *testing.T) {
	dir := t.TempDir()
	initrd, err := NewFileInitrd(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("process memory "), 10_000)
	if _, err := initrd.Write(data); err != nil {
		t.Fatal(err)
	}
	path, err := initrd.PathFile()
	if err != nil {
		t.Fatalf("PathFile() = %v, want nil", err)
	}
	defer path.Close()
	// The owner dies without a wipe: its descriptor goes, and the
	// O_PATH one keeps the file.
	initrd.Close()
	if err := WipeFile(path); err != nil {
		t.Fatalf("WipeFile() = %v, want nil", err)
	}
	got, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(path.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(make([]byte, len(data)), got); diff != "" {
		t.Errorf("contents after WipeFile mismatch (-want +got):\n%s", diff)
	}
	checkDirEmpty(t, dir)
}

func TestPathFileOfMemfd(t *testing.T) {
	initrd, err := NewInitrd()
	if err != nil {
		t.Fatal(err)
	}
	defer initrd.Close()
	if f, err := initrd.PathFile(); err == nil {
		f.Close()
		t.Errorf("PathFile() of a memfd initramfs = nil error, want an error")
	}
}
