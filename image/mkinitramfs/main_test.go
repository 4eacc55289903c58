package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/pkg/klog/klogtest"
)

// modulesTree writes a depmod-style modules directory with virtio_blk and
// its dependency virtio, and ext4 built in.
func modulesTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-test")
	files := map[string]string{
		"modules.dep":                        "kernel/drivers/virtio/virtio.ko:\nkernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n",
		"modules.alias":                      "alias virtio:d00000002v* virtio_blk\n",
		"modules.builtin":                    "kernel/fs/ext4/ext4.ko\n",
		"kernel/drivers/virtio/virtio.ko":    "\x7fELF virtio",
		"kernel/drivers/block/virtio_blk.ko": "\x7fELF virtio_blk",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestModulesCommand(t *testing.T) {
	dir := modulesTree(t)
	out := filepath.Join(t.TempDir(), "modules.cpio")
	args := []string{"modules", "--modules-dir", dir, "--release", "6.1.0-test",
		"--module", "ext4", "--modalias", "virtio:d00000002v00001AF4", "-o", out}
	if err := run(klogtest.New(t), args); err != nil {
		t.Fatalf("run(%q) = %v, want nil error", args, err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The load list is stored uncompressed, so its text is in the archive.
	if want := "kernel/drivers/virtio/virtio.ko\nkernel/drivers/block/virtio_blk.ko\n"; !strings.Contains(string(data), want) {
		t.Errorf("run(%q) archive lacks the load list %q", args, want)
	}
}

func TestModulesCommandErrors(t *testing.T) {
	dir := modulesTree(t)
	for _, tt := range []struct {
		name      string
		args      []string
		wantUsage bool
		wantText  string
	}{
		{"no command", nil, true, "no command"},
		{"unknown command", []string{"kernel"}, true, `unknown command "kernel"`},
		{"base without output", []string{"base"}, true, "-o FILE"},
		{"modules without release", []string{"modules", "--modules-dir", dir, "-o", "x"}, true, "--release"},
		{"stray argument", []string{"modules", "--modules-dir", dir, "--release", "r", "-o", "x", "extra"}, true, `"extra"`},
		{"unknown flag", []string{"modules", "--kernel", "x"}, true, "kernel"},
		{"unknown module", []string{"modules", "--modules-dir", dir, "--release", "r", "--module", "e1000e", "-o", "OUT"}, false, `"e1000e"`},
		{"no modules.dep", []string{"modules", "--modules-dir", t.TempDir(), "--release", "r", "-o", "OUT"}, false, "depmod"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "modules.cpio")
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "OUT", out)
			}
			err := run(klogtest.New(t), args)
			if err == nil {
				t.Fatalf("run(%q) = nil error, want an error", args)
			}
			if got := errors.Is(err, errUsage); got != tt.wantUsage {
				t.Errorf("run(%q) = %v, usage error %t, want %t", args, err, got, tt.wantUsage)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("run(%q) = %v, want it to mention %s", args, err, tt.wantText)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("run(%q) left %s behind after failing (stat: %v)", args, out, err)
			}
		})
	}
}
