package snapshot

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"path"
)

// CPIOWriter writes a compressed snapshot into a cpio archive while the
// snapshot is being written, so that the compressed stream never exists
// twice in memory. A newc header states its file's size before the data,
// so CPIOWriter needs to seek: it writes each part's header with the full
// part size and rewrites the last one when Finish learns its length.
//
// Typical use, with the initramfs in a memfd:
//
//	cw, err := snapshot.NewCPIOWriter(initramfs, "ksu", 0)
//	sw, err := snapshot.NewWriter(cw, snapshot.WriterOptions{})
//	... sw.WriteMeta, sw.WriteProcess, sw.WritePages ...
//	err = sw.Close()
//	hdr, err := cw.Finish(snapshot.ArchiveHeader{KernelRelease: release, Size: uint64(sw.Size())})
type CPIOWriter struct {
	c        newcWriter
	ws       io.WriteSeeker
	dir      string
	partSize uint64
	parts    int
	partAt   int64 // offset of the open part's header
	partLen  uint64
	open     bool
	total    uint64
	sum      hash.Hash32
	finished bool
	err      error
}

// NewCPIOWriter starts an archive at ws's current offset. It first pads
// the offset to a multiple of 4 with zero bytes, because the kernel finds
// an appended archive only at such an offset from the start of the
// initramfs and skips zeros before it. Offset 0 of ws must therefore be
// the start of the initramfs. partSize 0 means DefaultPartSize.
func NewCPIOWriter(ws io.WriteSeeker, dir string, partSize uint64) (*CPIOWriter, error) {
	if err := cleanDir(dir); err != nil {
		return nil, err
	}
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize > MaxPartSize {
		return nil, fmt.Errorf("new cpio writer: part size %d, limit %d", partSize, uint64(MaxPartSize))
	}
	cw := &CPIOWriter{c: newcWriter{w: ws}, ws: ws, dir: dir, partSize: partSize, sum: crc32.New(castagnoli)}
	pos, err := ws.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("new cpio writer: find the offset: %w", err)
	}
	if err := cw.c.pad(pos); err != nil {
		return nil, err
	}
	if err := cw.c.dirs(dir); err != nil {
		return nil, err
	}
	return cw, nil
}

// Write appends compressed snapshot bytes, starting a new part whenever
// the current one is full.
func (cw *CPIOWriter) Write(p []byte) (int, error) {
	if cw.finished {
		return 0, errors.New("write snapshot archive: writer is finished")
	}
	written := 0
	for len(p) > 0 {
		if cw.err != nil {
			return written, cw.err
		}
		if !cw.open || cw.partLen == cw.partSize {
			if cw.err = cw.openPart(); cw.err != nil {
				return written, cw.err
			}
		}
		n := int(min(uint64(len(p)), cw.partSize-cw.partLen))
		k, err := cw.ws.Write(p[:n])
		cw.sum.Write(p[:k])
		cw.partLen += uint64(k)
		cw.total += uint64(k)
		written += k
		if err != nil {
			cw.err = fmt.Errorf("write %s: %w", cw.partName(), err)
			return written, cw.err
		}
		p = p[n:]
	}
	return written, nil
}

func (cw *CPIOWriter) partName() string {
	return path.Join(cw.dir, PartName(cw.parts-1))
}

// openPart ends the full part, if any, and starts the next one.
func (cw *CPIOWriter) openPart() error {
	if cw.open {
		if err := cw.c.pad(int64(cw.partLen)); err != nil {
			return err
		}
	}
	if cw.parts == maxParts {
		return errorf(ErrTooLarge, "snapshot needs more than %d parts of %d bytes", maxParts, cw.partSize)
	}
	at, err := cw.ws.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("start part %d: find the offset: %w", cw.parts, err)
	}
	cw.parts++
	if err := cw.c.entry(cw.partName(), fileMode, int64(cw.partSize)); err != nil {
		return err
	}
	cw.partAt, cw.partLen, cw.open = at, 0, true
	return nil
}

// Finish ends the last part, rewriting its header with its real length,
// then writes the header file and the archive trailer. The caller sets
// hdr.KernelRelease and hdr.Size; Finish sets the other fields and
// returns the header it wrote.
func (cw *CPIOWriter) Finish(hdr ArchiveHeader) (ArchiveHeader, error) {
	if cw.finished {
		return hdr, errors.New("finish snapshot archive: already finished")
	}
	if cw.err != nil {
		return hdr, cw.err
	}
	if !cw.open {
		if cw.err = cw.openPart(); cw.err != nil {
			return hdr, cw.err
		}
	}
	if cw.err = cw.closePart(); cw.err != nil {
		return hdr, cw.err
	}
	hdr.Version = ArchiveVersion
	hdr.CompressedSize = cw.total
	hdr.PartSize = cw.partSize
	hdr.Parts = uint32(cw.parts)
	hdr.Checksum = cw.sum.Sum32()
	cw.err = cw.c.finish(cw.dir, hdr)
	cw.finished = cw.err == nil
	return hdr, cw.err
}

// closePart rewrites the open part's header with the part's real length
// and pads its data.
func (cw *CPIOWriter) closePart() error {
	end, err := cw.ws.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("finish %s: find the offset: %w", cw.partName(), err)
	}
	b, err := newcHeader(cw.partName(), fileMode, int64(cw.partLen), cw.c.inode)
	if err != nil {
		return err
	}
	if _, err := cw.ws.Seek(cw.partAt, io.SeekStart); err != nil {
		return fmt.Errorf("finish %s: seek to its header: %w", cw.partName(), err)
	}
	if _, err := cw.ws.Write(b); err != nil {
		return fmt.Errorf("finish %s: rewrite its header: %w", cw.partName(), err)
	}
	if _, err := cw.ws.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("finish %s: seek back to its end: %w", cw.partName(), err)
	}
	return cw.c.pad(int64(cw.partLen))
}
