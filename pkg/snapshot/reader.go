package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Concurrency is the number of goroutines that decompress; 0 means
	// the zstd package's default.
	Concurrency int
	// Size, when not 0, is the decompressed length the stream must have,
	// as ArchiveHeader.Size records it.
	Size int64
}

// Reader reads a snapshot one section at a time from a zstd stream.
// NewReader reads the Meta section; Next returns the sections after it.
// Every error about the stream's content is a *FormatError with the
// problem's location, or a *VersionError for an unknown major version.
type Reader struct {
	zr        *zstd.Decoder // nil when reading a decompressed stream
	br        *bufio.Reader
	off       int64 // decompressed bytes consumed
	size      int64
	meta      Meta
	index     int // index of the next section
	cur       *Section
	sawPages  bool
	pageBytes uint64
	err       error // sticky: the first error, or io.EOF after the end section
}

// NewReader reads the file header and the Meta section of the snapshot
// stream in r. Close the Reader to stop the decompressor's goroutines.
func NewReader(r io.Reader, opts ReaderOptions) (*Reader, error) {
	dopts := []zstd.DOption{zstd.WithDecoderMaxWindow(zstdWindow * maxWindowFactor)}
	if opts.Concurrency > 0 {
		dopts = append(dopts, zstd.WithDecoderConcurrency(opts.Concurrency))
	}
	zr, err := zstd.NewReader(r, dopts...)
	if err != nil {
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	sr, err := newStreamReader(zr, opts.Size)
	if err != nil {
		zr.Close()
		return nil, err
	}
	sr.zr = zr
	return sr, nil
}

// newStreamReader reads a decompressed snapshot stream.
func newStreamReader(r io.Reader, size int64) (*Reader, error) {
	sr := &Reader{br: bufio.NewReaderSize(r, 64<<10), size: size}
	if err := sr.readFileHeader(); err != nil {
		return nil, err
	}
	if err := sr.readMeta(); err != nil {
		return nil, err
	}
	return sr, nil
}

// Meta returns the snapshot's metadata.
func (r *Reader) Meta() Meta { return r.meta }

// Offset returns the number of decompressed bytes read so far.
func (r *Reader) Offset() int64 { return r.off }

// Close releases the decompressor. It does not close the source.
func (r *Reader) Close() error {
	if r.zr != nil {
		r.zr.Close()
		r.zr = nil
	}
	return nil
}

// readFull reads len(p) bytes and counts them. A stream that ends first
// is an ErrTruncated problem.
func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.off += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(ErrTruncated, "stream ends %d bytes into a %d-byte read", n, len(p))
	}
	return err
}

func (r *Reader) readFileHeader() error {
	var hdr [fileHeaderSize]byte
	fail := func(err error) error { return &FormatError{Section: -1, Offset: r.off, Err: err} }
	if err := r.readFull(hdr[:12]); err != nil {
		return fail(err)
	}
	if string(hdr[:8]) != Magic {
		return fail(errorf(ErrInvalid, "magic %q, want %q: not a ksu snapshot", hdr[:8], Magic))
	}
	major := binary.LittleEndian.Uint16(hdr[8:])
	minor := binary.LittleEndian.Uint16(hdr[10:])
	if major != MajorVersion {
		return &VersionError{Format: "snapshot", Major: int(major), Minor: int(minor), Want: MajorVersion}
	}
	if err := r.readFull(hdr[12:]); err != nil {
		return fail(err)
	}
	if got, want := crc32.Checksum(hdr[:12], castagnoli), binary.LittleEndian.Uint32(hdr[12:]); got != want {
		return fail(errorf(ErrChecksum, "file header CRC-32C is %08x, stored %08x", got, want))
	}
	return nil
}

// sectionHeader is a section's type and length, and where it starts.
type sectionHeader struct {
	index  int
	typ    SectionType
	length uint64
	offset int64
	sum    uint32 // CRC-32C of the header bytes
}

// readSectionHeader reads the next section header. A stream that ends
// before it starts is truncated too: only the end section may end it.
func (r *Reader) readSectionHeader() (sectionHeader, error) {
	h := sectionHeader{index: r.index, offset: r.off}
	var b [sectionHeaderSize]byte
	if err := r.readFull(b[:]); err != nil {
		if r.off == h.offset && errors.Is(err, ErrTruncated) {
			err = errorf(ErrTruncated, "stream ends before the end section")
		}
		return h, r.fail(h, err)
	}
	h.typ = SectionType(binary.LittleEndian.Uint32(b[0:]))
	h.length = binary.LittleEndian.Uint64(b[4:])
	h.sum = crc32.Checksum(b[:], castagnoli)
	if h.length > MaxSectionSize {
		return h, r.failAt(h, h.offset+4, errorf(ErrTooLarge, "section length %d, limit %d", h.length, uint64(MaxSectionSize)))
	}
	return h, nil
}

// fail returns err located at the current offset in section h.
func (r *Reader) fail(h sectionHeader, err error) error {
	return r.failAt(h, r.off, err)
}

func (r *Reader) failAt(h sectionHeader, offset int64, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		offset = fe.offset
	}
	return &FormatError{Section: h.index, Type: h.typ, Offset: offset, Err: err}
}

// readRecordPayload reads a record section's payload and its checksum.
// Memory grows with the bytes actually read, so a false length costs no
// more than the stream that backs it.
func (r *Reader) readRecordPayload(h sectionHeader) ([]byte, error) {
	if h.length > MaxRecordSize {
		return nil, r.failAt(h, h.offset+4, errorf(ErrTooLarge, "%v section length %d, limit %d", h.typ, h.length, MaxRecordSize))
	}
	buf := make([]byte, 0, min(h.length, 64<<10))
	for uint64(len(buf)) < h.length {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(uint64(len(buf)), h.length-uint64(len(buf)))))
		}
		chunk := buf[len(buf):int(min(uint64(cap(buf)), h.length))]
		if err := r.readFull(chunk); err != nil {
			return nil, r.fail(h, err)
		}
		buf = buf[:len(buf)+len(chunk)]
	}
	if err := r.checkSum(h, crc32.Update(h.sum, castagnoli, buf)); err != nil {
		return nil, err
	}
	return buf, nil
}

// checkSum reads a section's stored CRC-32C and compares it with sum.
func (r *Reader) checkSum(h sectionHeader, sum uint32) error {
	at := r.off
	var b [checksumSize]byte
	if err := r.readFull(b[:]); err != nil {
		return r.fail(h, err)
	}
	if stored := binary.LittleEndian.Uint32(b[:]); stored != sum {
		return r.failAt(h, at, errorf(ErrChecksum, "CRC-32C of the section is %08x, stored %08x", sum, stored))
	}
	return nil
}

func (r *Reader) readMeta() error {
	h, err := r.readSectionHeader()
	if err != nil {
		return err
	}
	if h.typ != SectionMeta {
		return r.failAt(h, h.offset, errorf(ErrInvalid, "first section is %v, want meta", h.typ))
	}
	payload, err := r.readRecordPayload(h)
	if err != nil {
		return err
	}
	payloadAt := h.offset + sectionHeaderSize
	if err := metaSchema.decodeBytes(payload, payloadAt, &r.meta); err != nil {
		return r.failAt(h, payloadAt, err)
	}
	if err := checkPageSize(r.meta.PageSize); err != nil {
		return r.failAt(h, payloadAt, err)
	}
	r.index++
	return nil
}

// Next returns the next section after Meta, or io.EOF after the end
// section has been read and checked. It first reads whatever the caller
// left unread of the previous section and checks that section's CRC-32C,
// so a caller that reads exactly the page data learns of damage from
// Next. Only io.EOF from Next vouches for the whole stream. A Section is
// valid until the next call to Next.
func (r *Reader) Next() (*Section, error) {
	if r.err != nil {
		return nil, r.err
	}
	s, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.index++
	r.cur = s
	return s, nil
}

func (r *Reader) next() (*Section, error) {
	if r.cur != nil {
		if err := r.cur.finish(); err != nil {
			return nil, err
		}
		r.cur = nil
	}
	h, err := r.readSectionHeader()
	if err != nil {
		return nil, err
	}
	s := &Section{Type: h.typ, Index: r.index, Offset: h.offset, Length: h.length, r: r, hdr: h}
	switch {
	case h.typ == SectionMeta:
		return nil, r.failAt(h, h.offset, errorf(ErrInvalid, "a second meta section"))
	case h.typ == SectionEnd:
		return nil, r.readEnd(h)
	case h.typ.isRecord():
		return s, r.openRecord(s)
	case h.typ == SectionPages:
		return s, r.openPages(s)
	}
	// A section type this version does not know: the caller may read
	// its payload or skip it.
	s.remain = h.length
	s.sum = h.sum
	return s, nil
}

func (r *Reader) openRecord(s *Section) error {
	if r.sawPages {
		return r.failAt(s.hdr, s.Offset, errorf(ErrInvalid, "%v section after a page section", s.Type))
	}
	payload, err := r.readRecordPayload(s.hdr)
	if err != nil {
		return err
	}
	s.payload = payload
	s.payloadAt = s.Offset + sectionHeaderSize
	return nil
}

// openPages reads and checks the Pages record at the start of a page
// section and leaves the page data to be streamed through the Section.
func (r *Reader) openPages(s *Section) error {
	h := s.hdr
	r.sawPages = true
	head, recAt, err := r.readPagesHead(h)
	if err != nil {
		return err
	}
	p := new(Pages)
	if err := pagesSchema.decodeBytes(head[4:len(head)-checksumSize], recAt, p); err != nil {
		return r.failAt(h, recAt, err)
	}
	if err := validatePages(p, r.meta.PageSize); err != nil {
		return r.failAt(h, recAt, err)
	}
	if data := h.length - uint64(len(head)); p.Size() != data {
		return r.failAt(h, recAt, errorf(ErrInvalid, "ranges hold %d bytes, the section has %d bytes of data", p.Size(), data))
	}
	s.pages = p
	s.remain = p.Size()
	s.sum = crc32.Update(h.sum, castagnoli, head)
	r.pageBytes += p.Size()
	return nil
}

// readPagesHead reads the start of a page section's payload: the Pages
// record's length, the record and the record's own CRC-32C, which it
// checks so that no range is used before it is known to be intact. It
// returns those bytes and the record's offset.
func (r *Reader) readPagesHead(h sectionHeader) ([]byte, int64, error) {
	const overhead = 4 + checksumSize
	if h.length < overhead {
		return nil, 0, r.failAt(h, h.offset+4, errorf(ErrInvalid,
			"pages section length %d is shorter than its record length and checksum", h.length))
	}
	var lb [4]byte
	if err := r.readFull(lb[:]); err != nil {
		return nil, 0, r.fail(h, err)
	}
	recLen := uint64(binary.LittleEndian.Uint32(lb[:]))
	if recLen > maxPagesHeader || recLen > h.length-overhead {
		return nil, 0, r.failAt(h, r.off-4, errorf(ErrTooLarge, "pages record length %d, limit %d and %d bytes left in the section",
			recLen, maxPagesHeader, h.length-overhead))
	}
	recAt := r.off
	head := make([]byte, overhead+recLen)
	copy(head, lb[:])
	if err := r.readFull(head[4:]); err != nil {
		return nil, 0, r.fail(h, err)
	}
	body := head[:len(head)-checksumSize]
	if got, stored := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(head[len(body):]); got != stored {
		return nil, 0, r.failAt(h, recAt, errorf(ErrChecksum, "CRC-32C of the pages record is %08x, stored %08x", got, stored))
	}
	return head, recAt, nil
}

// readEnd reads the end section, checks its counts against what was read
// and checks that nothing follows it.
func (r *Reader) readEnd(h sectionHeader) error {
	payload, err := r.readRecordPayload(h)
	if err != nil {
		return err
	}
	payloadAt := h.offset + sectionHeaderSize
	var e end
	if err := endSchema.decodeBytes(payload, payloadAt, &e); err != nil {
		return r.failAt(h, payloadAt, err)
	}
	if e.Sections != uint64(r.index) || e.PageBytes != r.pageBytes {
		return r.failAt(h, payloadAt, errorf(ErrInvalid,
			"end section counts %d sections and %d page bytes, the stream has %d and %d",
			e.Sections, e.PageBytes, r.index, r.pageBytes))
	}
	var extra [1]byte
	switch n, err := io.ReadFull(r.br, extra[:]); {
	case n > 0:
		return r.fail(h, errorf(ErrInvalid, "data after the end section"))
	case !errors.Is(err, io.EOF):
		return r.fail(h, err)
	}
	if r.size != 0 && r.off != r.size {
		return r.fail(h, errorf(ErrInvalid, "stream is %d bytes, the archive header says %d", r.off, r.size))
	}
	return io.EOF
}

// Section is one section of a snapshot. Record sections decode with the
// method named after their type. A page section's data, and the payload
// of a section type this version does not know, stream through Read.
// Read checks the CRC-32C after it has returned the last byte.
type Section struct {
	Type   SectionType
	Index  int    // position in the stream; Meta is 0
	Offset int64  // offset of the section header in the decompressed stream
	Length uint64 // payload length

	r         *Reader
	hdr       sectionHeader
	payload   []byte // record payload, checked
	payloadAt int64
	readPos   int    // bytes of payload returned by Read
	pages     *Pages // Pages record of a page section
	remain    uint64 // streamed bytes not yet read
	sum       uint32 // CRC-32C of the section so far, for streamed sections
	err       error  // sticky error of a streamed section, or io.EOF
}

// Pages returns the Pages record of a page section, and nil for other
// sections.
func (s *Section) Pages() *Pages { return s.pages }

// Read reads a page section's data, an unknown section's payload or a
// record section's encoded payload. At the end of a streamed payload it
// returns io.EOF if the CRC-32C matches and a *FormatError if not.
func (s *Section) Read(p []byte) (int, error) {
	if s.payload != nil || s.hdr.typ.isRecord() {
		n := copy(p, s.payload[s.readPos:])
		s.readPos += n
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.remain == 0 {
		s.err = s.endStream()
		return 0, s.err
	}
	p = p[:min(uint64(len(p)), s.remain)]
	n, err := s.r.br.Read(p)
	s.r.off += int64(n)
	s.remain -= uint64(n)
	s.sum = crc32.Update(s.sum, castagnoli, p[:n])
	if err != nil && (s.remain > 0 || !errors.Is(err, io.EOF)) {
		if errors.Is(err, io.EOF) {
			err = errorf(ErrTruncated, "stream ends with %d bytes of the section left", s.remain)
		}
		s.err = s.r.fail(s.hdr, err)
		return n, s.err
	}
	return n, nil
}

// endStream checks the checksum of a streamed section whose payload has
// been read.
func (s *Section) endStream() error {
	if err := s.r.checkSum(s.hdr, s.sum); err != nil {
		return err
	}
	return io.EOF
}

// finish reads what is left of the section and checks its checksum.
func (s *Section) finish() error {
	if s.payload != nil || s.hdr.typ.isRecord() {
		return nil
	}
	_, err := io.Copy(io.Discard, s)
	return err
}

// Process decodes a process section.
func (s *Section) Process() (*Process, error) {
	return decodeSection(s, SectionProcess, processSchema)
}

// File decodes a file section.
func (s *Section) File() (*File, error) {
	return decodeSection(s, SectionFile, fileSchema)
}

// Pipe decodes a pipe section.
func (s *Section) Pipe() (*Pipe, error) {
	return decodeSection(s, SectionPipe, pipeSchema)
}

// SharedMemory decodes a shared memory section.
func (s *Section) SharedMemory() (*SharedMemory, error) {
	return decodeSection(s, SectionSharedMemory, sharedMemorySchema)
}

// decodeSection decodes the payload of record section s as type t.
//
// Decoding can take far more memory than the record: an empty list
// element costs 2 bytes of payload but a whole Go value. The elements
// of one record may therefore take at most maxDecodedBytes.
func decodeSection[T any](s *Section, t SectionType, sc *schema[T]) (*T, error) {
	if s.Type != t {
		return nil, &FormatError{Section: s.Index, Type: s.Type, Offset: s.Offset,
			Err: errorf(ErrInvalid, "decode a %v section as %v", s.Type, t)}
	}
	v := new(T)
	if err := sc.decode(&decoder{buf: s.payload, base: s.payloadAt, budget: newBudget()}, v); err != nil {
		var fe *fieldError
		offset := s.payloadAt
		if errors.As(err, &fe) {
			offset = fe.offset
		}
		return nil, &FormatError{Section: s.Index, Type: s.Type, Offset: offset, Err: err}
	}
	return v, nil
}
