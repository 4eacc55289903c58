package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zstd"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// zstdWindow is the compression window the writer uses, and the largest
// one the reader accepts (times maxWindowFactor, for streams written by
// other encoders).
const (
	zstdWindow      = 8 << 20
	maxWindowFactor = 8
	pageCopySize    = 256 << 10 // bytes copied per step from a page source
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Level is the zstd compression level; 0 means zstd.SpeedDefault.
	Level zstd.EncoderLevel
	// Concurrency is the number of goroutines that compress; 0 means
	// GOMAXPROCS.
	Concurrency int
}

// Writer writes a snapshot one section at a time into a zstd stream.
// Call WriteMeta first, then the record sections (WriteFile, WritePipe,
// WriteSharedMemory, WritePath, WriteProcess, in any order), then the
// page sections, then Close. Nothing is buffered beyond the section
// being written and the compressor's window, so a snapshot never needs a
// second copy of the memory it holds.
//
// After an error from the destination or from a page source the stream
// is broken, and every later call returns that error. An invalid record
// or Pages value is rejected before anything is written, and the writer
// stays usable.
type Writer struct {
	enc       *zstd.Encoder
	size      int64 // decompressed bytes written
	sections  uint64
	pageBytes uint64
	pageSize  uint32
	stage     writerStage
	err       error
	rec       encoder // record buffer, reused
	copyBuf   []byte
}

type writerStage uint8

const (
	stageMeta    writerStage = iota // nothing written but the file header
	stageRecords                    // Meta written, record sections allowed
	stagePages                      // a page section written
	stageClosed
)

// NewWriter starts a snapshot stream on w and writes its file header.
// Close the Writer to finish the stream; it does not close w.
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	level := opts.Level
	if level == 0 {
		level = zstd.SpeedDefault
	}
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(opts.Concurrency),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	sw := &Writer{enc: enc}
	var hdr [fileHeaderSize]byte
	putFileHeader(hdr[:])
	if err := sw.write(hdr[:]); err != nil {
		enc.Close()
		return nil, err
	}
	return sw, nil
}

func putFileHeader(b []byte) {
	copy(b, Magic)
	binary.LittleEndian.PutUint16(b[8:], MajorVersion)
	binary.LittleEndian.PutUint16(b[10:], MinorVersion)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
}

func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.enc.Write(p)
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write snapshot stream at offset %d: %w", w.size, err)
	}
	return w.err
}

// Size returns the number of decompressed bytes written so far. After
// Close it is the length of the whole stream, which ArchiveHeader.Size
// records.
func (w *Writer) Size() int64 { return w.size }

// WriteMeta writes the Meta section. It must be the first section, and
// m.PageSize must be a power of two from 1 KiB to 1 GiB.
func (w *Writer) WriteMeta(m *Meta) error {
	if w.stage != stageMeta {
		return errors.New("write meta section: it must be the first section, and only one")
	}
	if err := checkPageSize(m.PageSize); err != nil {
		return fmt.Errorf("write meta section: %w", err)
	}
	if err := writeRecord(w, SectionMeta, "", metaSchema, m); err != nil {
		return err
	}
	w.pageSize = m.PageSize
	w.stage = stageRecords
	return nil
}

// parenthesize returns " (label)", or "" for an empty label.
func parenthesize(label string) string {
	if label == "" {
		return ""
	}
	return " (" + label + ")"
}

func checkPageSize(n uint32) error {
	if n < 1<<10 || n > 1<<30 || n&(n-1) != 0 {
		return errorf(ErrInvalid, "page size %d is not a power of two from 1 KiB to 1 GiB", n)
	}
	return nil
}

// WriteProcess writes a Process section.
func (w *Writer) WriteProcess(p *Process) error {
	if p.PID <= 0 {
		return fmt.Errorf("write process section: pid %d is not positive", p.PID)
	}
	return writeRecordSection(w, SectionProcess, fmt.Sprintf("pid %d", p.PID), processSchema, p)
}

// WriteFile writes a File section (an open file description).
func (w *Writer) WriteFile(f *File) error {
	if f.ID == 0 {
		return errors.New("write file section: id is 0")
	}
	return writeRecordSection(w, SectionFile, fmt.Sprintf("id %d", f.ID), fileSchema, f)
}

// WritePipe writes a Pipe section.
func (w *Writer) WritePipe(p *Pipe) error {
	if p.ID == 0 {
		return errors.New("write pipe section: id is 0")
	}
	return writeRecordSection(w, SectionPipe, fmt.Sprintf("id %d", p.ID), pipeSchema, p)
}

// WriteSharedMemory writes a SharedMemory section.
func (w *Writer) WriteSharedMemory(s *SharedMemory) error {
	if s.ID == 0 {
		return errors.New("write shared memory section: id is 0")
	}
	return writeRecordSection(w, SectionSharedMemory, fmt.Sprintf("id %d", s.ID), sharedMemorySchema, s)
}

// writeRecordSection writes a record section after checking that record
// sections are still allowed. label names the record in errors.
func writeRecordSection[T any](w *Writer, t SectionType, label string, s *schema[T], v *T) error {
	switch w.stage {
	case stageMeta:
		return fmt.Errorf("write %v section (%s): the meta section must come first", t, label)
	case stagePages:
		return fmt.Errorf("write %v section (%s): record sections must come before the page sections", t, label)
	case stageClosed:
		return fmt.Errorf("write %v section (%s): writer is closed", t, label)
	}
	return writeRecord(w, t, label, s, v)
}

// writeRecord encodes v and writes it as one section: header, payload,
// CRC-32C.
func writeRecord[T any](w *Writer, t SectionType, label string, s *schema[T], v *T) error {
	if w.err != nil {
		return w.err
	}
	var zeros [sectionHeaderSize]byte
	w.rec.buf = append(w.rec.buf[:0], zeros[:]...)
	w.rec.err = nil
	s.encode(&w.rec, v)
	if w.rec.err != nil {
		return fmt.Errorf("write %v section%s: %w", t, parenthesize(label), w.rec.err)
	}
	n := len(w.rec.buf) - sectionHeaderSize
	if n > MaxRecordSize {
		return fmt.Errorf("write %v section%s: encoded record is %d bytes, limit %d", t, parenthesize(label), n, MaxRecordSize)
	}
	putSectionHeader(w.rec.buf, t, uint64(n))
	sum := crc32.Checksum(w.rec.buf, castagnoli)
	w.rec.buf = binary.LittleEndian.AppendUint32(w.rec.buf, sum)
	if err := w.write(w.rec.buf); err != nil {
		return err
	}
	w.sections++
	return nil
}

func putSectionHeader(b []byte, t SectionType, length uint64) {
	binary.LittleEndian.PutUint32(b[0:], uint32(t))
	binary.LittleEndian.PutUint64(b[4:], length)
}

// WritePages writes one page section: p, then exactly p.Size() bytes
// read from data, which hold the ranges' contents in order. The caller
// leaves out pages that read as zero without being restored (see VMAKind).
func (w *Writer) WritePages(p *Pages, data io.Reader) error {
	switch w.stage {
	case stageMeta:
		return errors.New("write pages section: the meta section must come first")
	case stageClosed:
		return errors.New("write pages section: writer is closed")
	}
	if err := validatePages(p, w.pageSize); err != nil {
		return fmt.Errorf("write pages section: %w", err)
	}
	if w.err != nil {
		return w.err
	}

	head, length := w.pagesHead(p)
	if payload := uint64(len(head)-sectionHeaderSize) + length; payload > MaxSectionSize {
		return fmt.Errorf("write pages section: payload is %d bytes, limit %d", payload, uint64(MaxSectionSize))
	}
	sum := crc32.Checksum(head, castagnoli)
	if err := w.write(head); err != nil {
		return err
	}

	sum, err := w.copyPages(data, length, sum)
	if err != nil {
		return err
	}

	var trailer [checksumSize]byte
	binary.LittleEndian.PutUint32(trailer[:], sum)
	if err := w.write(trailer[:]); err != nil {
		return err
	}
	w.sections++
	w.pageBytes += length
	w.stage = stagePages
	return nil
}

// pagesHead encodes the start of a page section into the record buffer:
// the section header, the Pages record's length, the record and the
// record's CRC-32C. It returns them with the length of the data that
// follows.
func (w *Writer) pagesHead(p *Pages) ([]byte, uint64) {
	var zeros [sectionHeaderSize + 4]byte
	w.rec.buf = append(w.rec.buf[:0], zeros[:]...)
	pagesSchema.encode(&w.rec, p)
	recLen := len(w.rec.buf) - len(zeros)
	binary.LittleEndian.PutUint32(w.rec.buf[sectionHeaderSize:], uint32(recLen))
	recSum := crc32.Checksum(w.rec.buf[sectionHeaderSize:], castagnoli)
	w.rec.buf = binary.LittleEndian.AppendUint32(w.rec.buf, recSum)
	size := p.Size()
	putSectionHeader(w.rec.buf, SectionPages, uint64(len(w.rec.buf)-sectionHeaderSize)+size)
	return w.rec.buf, size
}

// copyPages copies n bytes from data into the stream and returns the
// CRC-32C updated with them. A short source breaks the stream, because
// the section header already promised n bytes.
func (w *Writer) copyPages(data io.Reader, n uint64, sum uint32) (uint32, error) {
	if w.copyBuf == nil {
		w.copyBuf = make([]byte, pageCopySize)
	}
	for done := uint64(0); done < n; {
		chunk := w.copyBuf[:min(uint64(len(w.copyBuf)), n-done)]
		k, err := io.ReadFull(data, chunk)
		if err != nil {
			w.err = fmt.Errorf("read page data at byte %d of %d: %w", done+uint64(k), n, err)
			return 0, w.err
		}
		sum = crc32.Update(sum, castagnoli, chunk)
		if err := w.write(chunk); err != nil {
			return 0, err
		}
		done += uint64(k)
	}
	return sum, nil
}

// Close writes the end section and finishes the zstd stream. It does not
// close the destination.
func (w *Writer) Close() error {
	if w.stage == stageClosed {
		return w.err
	}
	if w.stage == stageMeta {
		w.err = errors.New("close snapshot: no meta section written")
	}
	if w.err == nil {
		e := end{Sections: w.sections, PageBytes: w.pageBytes}
		_ = writeRecord(w, SectionEnd, "", endSchema, &e)
	}
	w.stage = stageClosed
	if err := w.enc.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("finish zstd stream: %w", err)
	}
	return w.err
}

// validatePages checks a Pages record against the rules that both the
// writer and the reader enforce.
func validatePages(p *Pages, pageSize uint32) error {
	if (p.PID > 0) == (p.ShmID != 0) {
		return errorf(ErrInvalid, "pages name pid %d and shm id %d: exactly one must be set", p.PID, p.ShmID)
	}
	if len(p.Ranges) == 0 {
		return errorf(ErrInvalid, "pages have no ranges")
	}
	if len(p.Ranges) > maxRanges {
		return errorf(ErrTooLarge, "pages have %d ranges, limit %d", len(p.Ranges), maxRanges)
	}
	mask := uint64(pageSize) - 1
	var next, total uint64
	for i, r := range p.Ranges {
		switch {
		case r.Len == 0:
			return errorf(ErrInvalid, "range %d is empty", i)
		case r.Addr&mask != 0 || r.Len&mask != 0:
			return errorf(ErrInvalid, "range %d [%#x, +%#x) is not page aligned (page size %d)", i, r.Addr, r.Len, pageSize)
		case r.Addr+r.Len < r.Addr:
			return errorf(ErrInvalid, "range %d [%#x, +%#x) wraps around", i, r.Addr, r.Len)
		case i > 0 && r.Addr < next:
			return errorf(ErrInvalid, "range %d at %#x overlaps or precedes the range before it", i, r.Addr)
		case r.Len > MaxSectionSize-total:
			return errorf(ErrTooLarge, "ranges hold more than %d bytes", uint64(MaxSectionSize))
		}
		next = r.Addr + r.Len
		total += r.Len
	}
	return nil
}
