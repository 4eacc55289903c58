package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Offsets into the x86 boot protocol's setup header, from the start of a
// bzImage (Documentation/arch/x86/boot.rst).
const (
	offSetupSects   = 0x1f1
	offHeaderMagic  = 0x202
	offVersion      = 0x206
	offKernelVerPtr = 0x20e
	offLoadFlags    = 0x211
	offXLoadFlags   = 0x236
	setupHeaderEnd  = 0x268
	loadedHigh      = 0x01 // loadflags: protected-mode code loads at 0x100000
	xlfKernel64     = 0x01 // xloadflags: has a 64-bit entry point at +0x200
	minBootProtocol = 0x020c
	maxReleaseLen   = 256
)

// ErrNotBzImage reports a file that is not an x86 bzImage a 64-bit kernel
// can load with kexec_file_load.
var ErrNotBzImage = errors.New("not an x86-64 bzImage")

// Image describes a kernel image as its setup header presents it.
type Image struct {
	// Release is the kernel's `uname -r`, e.g. "6.12.117+deb12-cloud-amd64".
	Release string
	// Version is the full version string, which starts with Release.
	Version string
	// Protocol is the boot protocol version, e.g. 0x020f.
	Protocol uint16
}

// ReadImage reads the setup header of the bzImage at path and checks that
// kexec_file_load on x86-64 can load it: boot protocol 2.12 or later, a
// kernel loaded high, and a 64-bit entry point.
func ReadImage(path string) (Image, error) {
	// A FIFO or a device would block the open or the read, so only a
	// regular file is opened.
	st, err := os.Stat(path)
	if err != nil {
		return Image{}, fmt.Errorf("read kernel image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Image{}, fmt.Errorf("read kernel image %s: a %v, not a regular file", path, st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return Image{}, fmt.Errorf("read kernel image: %w", err)
	}
	defer f.Close()

	img, err := parseImage(f)
	if err != nil {
		return Image{}, fmt.Errorf("read kernel image %s: %w", path, err)
	}
	return img, nil
}

// ReadRelease returns the `uname -r` string of the bzImage at path.
func ReadRelease(path string) (string, error) {
	img, err := ReadImage(path)
	return img.Release, err
}

func parseImage(r io.ReaderAt) (Image, error) {
	hdr := make([]byte, setupHeaderEnd)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return Image{}, fmt.Errorf("%w: setup header: %w", ErrNotBzImage, err)
	}
	if !bytes.Equal(hdr[offHeaderMagic:offHeaderMagic+4], []byte("HdrS")) {
		return Image{}, fmt.Errorf("%w: no HdrS magic at 0x%x", ErrNotBzImage, offHeaderMagic)
	}

	img := Image{Protocol: binary.LittleEndian.Uint16(hdr[offVersion:])}
	if img.Protocol < minBootProtocol {
		return Image{}, fmt.Errorf("%w: boot protocol %d.%d, kexec_file_load needs 2.12 or later",
			ErrNotBzImage, img.Protocol>>8, img.Protocol&0xff)
	}
	if hdr[offLoadFlags]&loadedHigh == 0 {
		return Image{}, fmt.Errorf("%w: zImage (not loaded high)", ErrNotBzImage)
	}
	if binary.LittleEndian.Uint16(hdr[offXLoadFlags:])&xlfKernel64 == 0 {
		return Image{}, fmt.Errorf("%w: no 64-bit entry point", ErrNotBzImage)
	}

	version, err := readVersion(r, binary.LittleEndian.Uint16(hdr[offKernelVerPtr:]))
	if err != nil {
		return Image{}, err
	}
	img.Version = version
	img.Release, _, _ = strings.Cut(version, " ")
	return img, nil
}

// readVersion reads the NUL-terminated version string that the setup
// header's kernel_version field points at (relative to offset 0x200).
func readVersion(r io.ReaderAt, ptr uint16) (string, error) {
	if ptr == 0 {
		return "", fmt.Errorf("%w: no kernel_version string", ErrNotBzImage)
	}
	buf := make([]byte, maxReleaseLen)
	n, err := r.ReadAt(buf, int64(ptr)+0x200)
	if n == 0 {
		return "", fmt.Errorf("%w: kernel_version at 0x%x: %w", ErrNotBzImage, int(ptr)+0x200, err)
	}
	s, _, found := bytes.Cut(buf[:n], []byte{0})
	if !found || len(s) == 0 {
		return "", fmt.Errorf("%w: kernel_version at 0x%x is not a string", ErrNotBzImage, int(ptr)+0x200)
	}
	return string(s), nil
}
