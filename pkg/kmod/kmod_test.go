package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ksu-project/ksu/pkg/klog/klogtest"
	"golang.org/x/sys/unix"
)

func TestReadLoadList(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{"empty", "", nil, false},
		{
			"order kept, comments skipped",
			"# load order\nkernel/drivers/virtio/virtio.ko\n\n  kernel/drivers/block/virtio_blk.ko  \n",
			[]string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko"},
			false,
		},
		{"absolute path", "/lib/modules/x.ko\n", nil, true},
		{"escapes directory", "../x.ko\n", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadLoadList(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ReadLoadList(%q) error = %v, want error %t", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadLoadList(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestLoadAllContinuesPastFailures(t *testing.T) {
	dir := t.TempDir()
	list := "a.ko\nb.ko\nc.ko\nd.ko\n"
	if err := os.WriteFile(filepath.Join(dir, LoadListName), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	var inserted []string
	l := Loader{
		Log: klogtest.New(t),
		// This fake replaces finit_module, because tests must never load
		// a module into the kernel they run on.
		Insert: func(path string) error {
			inserted = append(inserted, filepath.Base(path))
			switch filepath.Base(path) {
			case "b.ko":
				return fmt.Errorf("finit_module(%s): %w", path, unix.EEXIST)
			case "c.ko":
				return fmt.Errorf("finit_module(%s): %w", path, unix.ENOEXEC)
			}
			return nil
		},
	}

	got, err := l.LoadAll(dir)
	if err != nil {
		t.Fatalf("LoadAll(%q) = %v, want nil error", dir, err)
	}
	want := Summary{Loaded: 2, Present: 1, Failed: []string{"c.ko"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadAll(%q) summary mismatch (-want +got):\n%s", dir, diff)
	}
	if diff := cmp.Diff([]string{"a.ko", "b.ko", "c.ko", "d.ko"}, inserted); diff != "" {
		t.Errorf("LoadAll(%q) insert order mismatch (-want +got):\n%s", dir, diff)
	}
}

func TestLoadAllMissingList(t *testing.T) {
	dir := t.TempDir()
	l := Loader{Insert: func(string) error { t.Fatal("Insert called without a load list"); return nil }}
	_, err := l.LoadAll(dir)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadAll(%q) = %v, want an error matching os.ErrNotExist", dir, err)
	}
}
