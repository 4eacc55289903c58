package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ksu-project/ksu/pkg/klog/klogtest"
)

func TestZeroFileKeepsSize(t *testing.T) {
	for _, size := range []int{0, 1, 1 << 20, 1<<20 + 3} {
		path := filepath.Join(t.TempDir(), "snapshot.000")
		if err := os.WriteFile(path, bytes.Repeat([]byte("secret"), size)[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		n, err := zeroFile(path)
		if err != nil || n != int64(size) {
			t.Errorf("zeroFile(%d bytes) = %d, %v, want %d, nil", size, n, err, size)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, make([]byte, size)) {
			t.Errorf("zeroFile(%d bytes): file is %d bytes, not all zero", size, len(got))
		}
	}
}

func TestWipeSnapshotRemovesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ksu")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"snapshot.hdr", "snapshot.000", "snapshot.001"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("process memory"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wipeSnapshot(klogtest.New(t), dir)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("wipeSnapshot(%s): stat afterwards = %v, want not exist", dir, err)
	}
	wipeSnapshot(klogtest.New(t), dir) // a second call finds nothing and logs nothing
}
