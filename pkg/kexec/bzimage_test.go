package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeImage returns the first bytes of a bzImage with a valid setup header
// whose kernel_version string is version.
func fakeImage(version string) []byte {
	img := make([]byte, 0x400)
	copy(img[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(img[offVersion:], 0x020f)
	img[offLoadFlags] = loadedHigh
	binary.LittleEndian.PutUint16(img[offXLoadFlags:], xlfKernel64)
	binary.LittleEndian.PutUint16(img[offKernelVerPtr:], 0x300-0x200)
	copy(img[0x300:], version+"\x00")
	return img
}

func TestParseImage(t *testing.T) {
	version := "6.12.117+deb12-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP"
	img, err := parseImage(bytes.NewReader(fakeImage(version)))
	if err != nil {
		t.Fatalf("parseImage(valid header) = %v, want nil error", err)
	}
	if img.Release != "6.12.117+deb12-cloud-amd64" {
		t.Errorf("parseImage(valid header).Release = %q, want %q", img.Release, "6.12.117+deb12-cloud-amd64")
	}
	if img.Version != version {
		t.Errorf("parseImage(valid header).Version = %q, want %q", img.Version, version)
	}
}

func TestParseImageRejects(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"short file", func(b []byte) []byte { return b[:0x100] }},
		{"no magic", func(b []byte) []byte { copy(b[offHeaderMagic:], "ELF!"); return b }},
		{"old protocol", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[offVersion:], 0x0204); return b }},
		{"not loaded high", func(b []byte) []byte { b[offLoadFlags] = 0; return b }},
		{"no 64-bit entry", func(b []byte) []byte { b[offXLoadFlags] = 0; return b }},
		{"no version pointer", func(b []byte) []byte { b[offKernelVerPtr], b[offKernelVerPtr+1] = 0, 0; return b }},
		{"version past end", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[offKernelVerPtr:], 0x7000); return b }},
		{"empty version", func(b []byte) []byte { b[0x300] = 0; return b }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.mutate(fakeImage("6.1.0-50-cloud-amd64 #1"))
			_, err := parseImage(bytes.NewReader(data))
			if !errors.Is(err, ErrNotBzImage) {
				t.Errorf("parseImage(%s) = %v, want ErrNotBzImage", tt.name, err)
			}
		})
	}
}

func TestReadReleaseNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadRelease(path)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Errorf("ReadRelease(%s) = %v, want an error naming the file", path, err)
	}
}

// TestReadReleaseDebianKernels reads the real kernels that build.sh setup
// unpacked, when they are there.
func TestReadReleaseDebianKernels(t *testing.T) {
	dir := os.Getenv("KSU_IMAGES")
	if dir == "" {
		t.Skip("skipping: KSU_IMAGES not set; ./build.sh setup builds the images")
	}
	kernels, _ := filepath.Glob(filepath.Join(dir, "kernels", "*", "vmlinuz"))
	if len(kernels) == 0 {
		t.Fatalf("no kernels under %s/kernels", dir)
	}
	for _, k := range kernels {
		want := filepath.Base(filepath.Dir(k))
		got, err := ReadRelease(k)
		if err != nil || got != want {
			t.Errorf("ReadRelease(%s) = %q, %v, want %q", k, got, err, want)
		}
	}
}

func TestReadImageRejectsFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmlinuz")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadImage(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadImage(FIFO) = %v, want an error saying it is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadImage(FIFO) blocked for 10 s")
	}
}
