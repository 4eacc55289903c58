package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"path"
	"strings"

	"github.com/cavaliercoder/go-cpio"
)

// File modes of the archive's entries. The snapshot holds the memory of
// every dumped process, so only root may read it.
const (
	dirMode  = cpio.ModeDir | 0o700
	fileMode = cpio.ModeRegular | 0o400
)

// newcWriter writes newc entries whose headers go-cpio encodes. It writes
// the data itself, because the streaming writer learns a part's size
// only after the part's data.
type newcWriter struct {
	w     io.Writer
	inode int64
}

// newcHeader encodes the newc header of an entry.
//
// N.B. The header's Checksum stays 0. When it is set, go-cpio writes the
// "070702" magic into its package-level magic slice, which would give
// every later header of the process that magic.
func newcHeader(name string, mode cpio.FileMode, size, inode int64) ([]byte, error) {
	var buf bytes.Buffer
	hw := cpio.NewWriter(&buf)
	h := &cpio.Header{Name: name, Mode: mode, Size: size, Inode: inode, Links: 1}
	if err := hw.WriteHeader(h); err != nil {
		return nil, fmt.Errorf("encode cpio header of %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// entry writes the header of an entry. Its data, then pad, must follow.
func (c *newcWriter) entry(name string, mode cpio.FileMode, size int64) error {
	c.inode++
	b, err := newcHeader(name, mode, size, c.inode)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("write cpio header of %s: %w", name, err)
	}
	return nil
}

// pad writes the zeros that align the end of size bytes of data to 4.
func (c *newcWriter) pad(size int64) error {
	var zeros [3]byte
	if _, err := c.w.Write(zeros[:(4-size%4)%4]); err != nil {
		return fmt.Errorf("write cpio padding: %w", err)
	}
	return nil
}

// dirs writes an entry for dir and each of its parents, because the
// kernel's initramfs unpacker creates no missing parent directory.
func (c *newcWriter) dirs(dir string) error {
	for i, elem := range strings.Split(dir, "/") {
		if elem == "" {
			continue
		}
		name := strings.Join(strings.Split(dir, "/")[:i+1], "/")
		if err := c.entry(name, dirMode, 0); err != nil {
			return err
		}
	}
	return nil
}

// file writes a whole small file.
func (c *newcWriter) file(name string, data []byte) error {
	if err := c.entry(name, fileMode, int64(len(data))); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return c.pad(int64(len(data)))
}

// trailer ends the archive.
func (c *newcWriter) trailer() error {
	var buf bytes.Buffer
	if err := cpio.NewWriter(&buf).Close(); err != nil {
		return fmt.Errorf("encode cpio trailer: %w", err)
	}
	if _, err := c.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write cpio trailer: %w", err)
	}
	return nil
}

// cleanDir checks an archive directory: relative, clean, not empty.
func cleanDir(dir string) error {
	if dir == "" || path.IsAbs(dir) || path.Clean(dir) != dir || dir == "." || strings.HasPrefix(dir, "..") {
		return fmt.Errorf("archive directory %q is not a clean relative path such as \"ksu\"", dir)
	}
	return nil
}

// WriteCPIO writes a newc cpio archive to w that holds payload, a
// compressed snapshot stream, as dir/snapshot.000, dir/snapshot.001 ...,
// and hdr as dir/snapshot.hdr. The caller sets hdr.KernelRelease,
// hdr.Size and hdr.CompressedSize, which must be payload's length, and
// may set hdr.PartSize (0 means DefaultPartSize). WriteCPIO fills in the
// rest and returns the header it wrote.
//
// dir is relative, such as "ksu"; the archive creates it. The kernel
// reads an archive appended to an initramfs only if it starts at a
// multiple of 4 bytes, so w must be at such an offset.
func WriteCPIO(w io.Writer, dir string, hdr ArchiveHeader, payload io.Reader) (ArchiveHeader, error) {
	if err := cleanDir(dir); err != nil {
		return hdr, err
	}
	if hdr.PartSize == 0 {
		hdr.PartSize = DefaultPartSize
	}
	hdr.Version = ArchiveVersion
	if hdr.PartSize <= MaxPartSize && hdr.CompressedSize <= maxParts*hdr.PartSize {
		hdr.Parts = uint32(partCount(hdr.CompressedSize, hdr.PartSize))
	}
	if err := hdr.validate(); err != nil {
		return hdr, fmt.Errorf("write snapshot archive: %w", err)
	}
	c := &newcWriter{w: w}
	if err := c.dirs(dir); err != nil {
		return hdr, err
	}
	sum := crc32.New(castagnoli)
	for i := range int(hdr.Parts) {
		if err := c.copyPart(path.Join(dir, PartName(i)), hdr.partLen(i), payload, sum); err != nil {
			return hdr, err
		}
	}
	var extra [1]byte
	if n, _ := io.ReadFull(payload, extra[:]); n > 0 {
		return hdr, fmt.Errorf("write snapshot archive: payload is longer than the %d bytes of CompressedSize", hdr.CompressedSize)
	}
	hdr.Checksum = sum.Sum32()
	return hdr, c.finish(dir, hdr)
}

// copyPart writes one part of n bytes copied from payload, which it
// also adds to sum.
func (c *newcWriter) copyPart(name string, n uint64, payload io.Reader, sum hash.Hash32) error {
	if err := c.entry(name, fileMode, int64(n)); err != nil {
		return err
	}
	copied, err := io.CopyN(io.MultiWriter(c.w, sum), payload, int64(n))
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("write %s: payload ends %d bytes into the part, before CompressedSize", name, copied)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return c.pad(int64(n))
}

// finish writes the header file and the trailer.
func (c *newcWriter) finish(dir string, hdr ArchiveHeader) error {
	b, err := hdr.MarshalBinary()
	if err != nil {
		return fmt.Errorf("write snapshot archive header: %w", err)
	}
	if err := c.file(path.Join(dir, HeaderName), b); err != nil {
		return err
	}
	return c.trailer()
}
