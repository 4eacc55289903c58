package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/klog"
)

// testSwitchLog returns a switchLog that writes to out and not to the
// kernel log.
func testSwitchLog(out io.Writer) *switchLog {
	return &switchLog{stderr: klog.NewWriter("ksu", out), kernel: klog.NewKmsg("ksu", io.Discard)}
}

func TestNewInitrdSpillErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, spill, want string
	}{
		{"missing directory", filepath.Join(dir, "missing"), "spill directory: stat " + dir + "/missing: no such file or directory"},
		{"not a directory", file, "spill directory " + file + ": not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			initrd, err := newInitrd(updateOptions{spill: tt.spill})
			if err == nil {
				initrd.Close()
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("newInitrd(spill %q) = %v, want an error starting with %q", tt.spill, err, tt.want)
			}
		})
	}
}

func TestDiscardInitrdSpill(t *testing.T) {
	dir := t.TempDir()
	initrd, err := newInitrd(updateOptions{spill: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := initrd.Dir(); got != dir {
		t.Errorf("newInitrd(spill %q).Dir() = %q, want %q", dir, got, dir)
	}
	if _, err := initrd.Write(bytes.Repeat([]byte{0xa5}, 3<<20)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	discardInitrd(initrd, testSwitchLog(&out))
	if !initrd.Closed() {
		t.Errorf("initramfs still open after discardInitrd")
	}
	want := "spill: zeroed and freed the initramfs file in " + dir + ", 3.0 MiB"
	if !strings.Contains(out.String(), want) {
		t.Errorf("discardInitrd logged %q, want a line containing %q", out.String(), want)
	}
	checkEmptyDir(t, dir)

	// A second call, as the deferred one after the discard at the load,
	// does nothing.
	out.Reset()
	discardInitrd(initrd, testSwitchLog(&out))
	if out.Len() != 0 {
		t.Errorf("discardInitrd on a closed initramfs logged %q, want nothing", out.String())
	}
}

// TestIntegrationAssembleSpillFull assembles the initramfs in a 64 KiB
// tmpfs: the error must name the directory and ENOSPC, and the file must
// be gone with its blocks.
func TestIntegrationAssembleSpillFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("ksu-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	base := filepath.Join(t.TempDir(), "base.cpio")
	if err := os.WriteFile(base, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	o := updateOptions{spill: dir, base: base, modulesDir: t.TempDir()}
	initrd, err := assembleInitrd(o, "6.1.0-test", testSwitchLog(&out))
	if err == nil {
		initrd.Close()
	}
	want := "copy " + base + " into the initramfs: write initramfs file in " + dir + ": no space left on device"
	if !errors.Is(err, unix.ENOSPC) || err.Error() != want {
		t.Errorf("assembleInitrd(spill to a full tmpfs) = %v, want %q", err, want)
	}
	checkEmptyDir(t, dir)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bfree != st.Blocks {
		t.Errorf("tmpfs has %d of %d blocks free after the failure, want all", st.Bfree, st.Blocks)
	}
}

func checkEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("directory %s has %d entries, want none: first %s", dir, len(entries), entries[0].Name())
	}
}
