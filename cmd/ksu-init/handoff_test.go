package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/pkg/klog/klogtest"
	"golang.org/x/sys/unix"
)

// newRootTree builds a root filesystem tree with an executable
// /lib/systemd/systemd, an absolute /sbin/init link to it, a
// non-executable /bin/init and a /etc/init directory.
func newRootTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"lib/systemd", "sbin", "bin", "etc/init"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "lib/systemd/systemd"), []byte("#!"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/init"), []byte("#!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestFindInit(t *testing.T) {
	root := newRootTree(t)
	for _, tt := range []struct {
		name       string
		candidates []string
		want       string
		wantErr    bool
	}{
		// The link target exists only inside root, so this passes only if
		// the link resolves there.
		{"absolute link inside root", initCandidates, "/sbin/init", false},
		{"explicit init", []string{"/lib/systemd/systemd"}, "/lib/systemd/systemd", false},
		{"directory skipped", []string{"/etc/init", "/sbin/init"}, "/sbin/init", false},
		{"not executable", []string{"/bin/init"}, "", true},
		{"missing", []string{"/sbin/no-such-init"}, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findInit(root, tt.candidates)
			if (err != nil) != tt.wantErr {
				t.Fatalf("findInit(%q) error = %v, want error %t", tt.candidates, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("findInit(%q) = %q, want %q", tt.candidates, got, tt.want)
			}
		})
	}
}

func TestRemoveContents(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"init", "bin/ksu-init", "ksu/snapshot/pages.zst", "lib/modules/6.1/kernel/a.ko"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/", filepath.Join(root, "link-to-host-root")); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		t.Fatal(err)
	}

	removed, failed := removeContents(int(dir.Fd()), st.Dev, 0)
	// 4 files, 1 symlink (removed, not followed) and 7 directories.
	if removed != 12 || failed != 0 {
		t.Errorf("removeContents(%s) = %d removed, %d failed, want 12, 0", root, removed, failed)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Errorf("after removeContents, %s has %v (%v), want no entries", root, entries, err)
	}
}

func TestFreeInitramfsOnlyOnRootfs(t *testing.T) {
	root := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(root, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.RAMFS_MAGIC || fs.Type == unix.TMPFS_MAGIC {
		t.Skipf("skipping: %s is on tmpfs, so it would be freed", root)
	}
	keep := filepath.Join(root, "keep")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	log := klogtest.New(t)

	freeInitramfs(log, int(dir.Fd()))

	if _, err := os.Stat(keep); err != nil {
		t.Errorf("freeInitramfs on a %#x filesystem removed %s: %v", fs.Type, keep, err)
	}
	lines := log.Lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "left in place") {
		t.Errorf("freeInitramfs log = %q, want one line saying the old root is left in place", lines)
	}
}
