package kexec

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// TestReopenWritable checks that an initramfs made read-only for a load
// takes more writes after reopenWritable, at its end, in memory and in a
// spill file. No kernel is loaded: readOnly is what Load does to the
// initramfs before the call.
func TestReopenWritable(t *testing.T) {
	for _, tt := range []struct {
		name   string
		create func() (*Initrd, error)
	}{
		{"memfd", NewInitrd},
		{"spill file", func() (*Initrd, error) { return NewFileInitrd(t.TempDir()) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			initrd, err := tt.create()
			if err != nil {
				t.Fatal(err)
			}
			defer initrd.Close()
			testReopenWritable(t, initrd)
		})
	}
}

func testReopenWritable(t *testing.T, initrd *Initrd) {
	if _, err := initrd.Write([]byte("base+modules")); err != nil {
		t.Fatal(err)
	}
	if _, err := initrd.readOnly(); err != nil {
		t.Fatal(err)
	}
	if _, err := initrd.Write([]byte("x")); err == nil {
		t.Fatal("Write after readOnly = nil error, want one: the descriptor should be read-only")
	}
	// The failed Write moved nothing: Initrd counts only written bytes.
	if err := initrd.reopenWritable(); err != nil {
		t.Fatalf("reopenWritable() = %v, want nil error", err)
	}
	if _, err := initrd.Write([]byte("+snapshot")); err != nil {
		t.Fatalf("Write after reopenWritable = %v, want nil error", err)
	}
	got, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(initrd.f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("base+modules+snapshot"); !bytes.Equal(got, want) {
		t.Errorf("initramfs content = %q, want %q", got, want)
	}
	if got, want := initrd.Size(), int64(len("base+modules+snapshot")); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
}
