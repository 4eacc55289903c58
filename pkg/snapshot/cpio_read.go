package snapshot

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"path"
)

// ArchiveReader reads the compressed snapshot stored in a directory as
// the kernel unpacked it from the initramfs: the header file and the
// parts that it lists. Read returns the parts' concatenation and checks
// the payload's CRC-32C at the end.
type ArchiveReader struct {
	fsys   fs.FS
	dir    string
	hdr    ArchiveHeader
	part   int     // index of the open part, or of the next one to open
	f      fs.File // open part, nil between parts
	remain uint64  // bytes of the open part not yet read
	sum    hash.Hash32
	err    error // sticky: the first error, or io.EOF at the end
}

// OpenCPIO reads and checks dir/snapshot.hdr in fsys and checks that every
// part it lists exists with the right size. ksu-init passes
// os.DirFS("/") and "ksu". The payload's checksum is checked as Read
// reaches its end; VerifyCPIO checks it first instead.
func OpenCPIO(fsys fs.FS, dir string) (*ArchiveReader, error) {
	hdr, err := readArchiveHeader(fsys, dir)
	if err != nil {
		return nil, err
	}
	for i := range int(hdr.Parts) {
		name := path.Join(dir, PartName(i))
		fi, err := fs.Stat(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("open snapshot part: %w", err)
		}
		if want := hdr.partLen(i); !fi.Mode().IsRegular() || uint64(fi.Size()) != want {
			return nil, fmt.Errorf("open snapshot part %s: %w", name,
				errorf(ErrTruncated, "%v file of %d bytes, want a regular file of %d", fi.Mode().Type(), fi.Size(), want))
		}
	}
	return &ArchiveReader{fsys: fsys, dir: dir, hdr: hdr, sum: crc32.New(castagnoli)}, nil
}

func readArchiveHeader(fsys fs.FS, dir string) (ArchiveHeader, error) {
	var hdr ArchiveHeader
	name := path.Join(dir, HeaderName)
	f, err := fsys.Open(name)
	if err != nil {
		return hdr, fmt.Errorf("read snapshot archive header: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxArchiveHeaderLen+1))
	if err != nil {
		return hdr, fmt.Errorf("read snapshot archive header %s: %w", name, err)
	}
	if len(b) > maxArchiveHeaderLen {
		return hdr, fmt.Errorf("read snapshot archive header %s: %w", name,
			errorf(ErrTooLarge, "file is longer than %d bytes", maxArchiveHeaderLen))
	}
	if err := hdr.UnmarshalBinary(b); err != nil {
		return hdr, fmt.Errorf("read snapshot archive header %s: %w", name, err)
	}
	return hdr, nil
}

// VerifyCPIO reads the whole payload once and checks its CRC-32C, so a
// damaged snapshot is found before the restore starts.
func VerifyCPIO(fsys fs.FS, dir string) (ArchiveHeader, error) {
	ar, err := OpenCPIO(fsys, dir)
	if err != nil {
		return ArchiveHeader{}, err
	}
	defer ar.Close()
	if _, err := io.Copy(io.Discard, ar); err != nil {
		return ar.hdr, err
	}
	return ar.hdr, nil
}

// Header returns the archive header.
func (ar *ArchiveReader) Header() ArchiveHeader { return ar.hdr }

// Read reads the payload: the parts in order.
func (ar *ArchiveReader) Read(p []byte) (int, error) {
	for ar.err == nil && ar.f == nil {
		ar.err = ar.openNext()
	}
	if ar.err != nil {
		return 0, ar.err
	}
	p = p[:min(uint64(len(p)), ar.remain)]
	n, err := ar.f.Read(p)
	ar.sum.Write(p[:n])
	ar.remain -= uint64(n)
	switch {
	case ar.remain == 0:
		ar.err = ar.closePart()
	case errors.Is(err, io.EOF):
		ar.err = fmt.Errorf("read %s: %w", path.Join(ar.dir, PartName(ar.part)),
			errorf(ErrTruncated, "file ends %d bytes early", ar.remain))
	case err != nil:
		ar.err = fmt.Errorf("read %s: %w", path.Join(ar.dir, PartName(ar.part)), err)
	}
	if ar.err != nil && !errors.Is(ar.err, io.EOF) {
		return n, ar.err
	}
	return n, nil
}

// openNext opens the next part, or checks the checksum after the last.
func (ar *ArchiveReader) openNext() error {
	if ar.part == int(ar.hdr.Parts) {
		if got := ar.sum.Sum32(); got != ar.hdr.Checksum {
			return fmt.Errorf("read snapshot archive: %w", errorf(ErrChecksum,
				"payload CRC-32C is %08x, the header says %08x", got, ar.hdr.Checksum))
		}
		return io.EOF
	}
	name := path.Join(ar.dir, PartName(ar.part))
	f, err := ar.fsys.Open(name)
	if err != nil {
		return fmt.Errorf("read snapshot part: %w", err)
	}
	ar.f, ar.remain = f, ar.hdr.partLen(ar.part)
	if ar.remain == 0 {
		return ar.closePart()
	}
	return nil
}

// closePart closes the fully read open part and moves to the next.
func (ar *ArchiveReader) closePart() error {
	err := ar.f.Close()
	ar.f = nil
	ar.part++
	if err != nil {
		return fmt.Errorf("close %s: %w", path.Join(ar.dir, PartName(ar.part-1)), err)
	}
	return nil
}

// Close closes the open part, if any. Read fails after Close.
func (ar *ArchiveReader) Close() error {
	if ar.err == nil {
		ar.err = errors.New("read snapshot archive: reader is closed")
	}
	if ar.f == nil {
		return nil
	}
	err := ar.f.Close()
	ar.f = nil
	return err
}
