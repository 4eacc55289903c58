package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Helpers that build decompressed streams by hand, so tests can put
// exactly the damage they want into them.

func rawFileHeader(major, minor uint16) []byte {
	b := make([]byte, fileHeaderSize)
	copy(b, Magic)
	binary.LittleEndian.PutUint16(b[8:], major)
	binary.LittleEndian.PutUint16(b[10:], minor)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}

// appendSection appends a section with a correct checksum.
func appendSection(b []byte, t SectionType, payload []byte) []byte {
	return appendSectionLen(b, t, uint64(len(payload)), payload)
}

// appendSectionLen appends a section whose header claims length bytes,
// whatever the payload's real length, with the checksum the payload
// would have.
func appendSectionLen(b []byte, t SectionType, length uint64, payload []byte) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(t))
	b = binary.LittleEndian.AppendUint64(b, length)
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func record[T any](s *schema[T], v *T) []byte {
	var e encoder
	s.encode(&e, v)
	return e.buf
}

func pagesPayload(p *Pages, data []byte) []byte {
	rec := record(pagesSchema, p)
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(rec)))
	b = append(b, rec...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, data...)
}

func endPayload(sections, pageBytes uint64) []byte {
	return record(endSchema, &end{Sections: sections, PageBytes: pageBytes})
}

// streamBuilder assembles a raw stream section by section.
type streamBuilder struct{ b []byte }

func newStream() *streamBuilder {
	return &streamBuilder{b: appendSection(rawFileHeader(MajorVersion, MinorVersion), SectionMeta, record(metaSchema, testMeta()))}
}

func (s *streamBuilder) add(t SectionType, payload []byte) *streamBuilder {
	s.b = appendSection(s.b, t, payload)
	return s
}

func (s *streamBuilder) end(sections, pageBytes uint64) []byte {
	return appendSection(s.b, SectionEnd, endPayload(sections, pageBytes))
}

var onePage = &Pages{PID: 1, Ranges: []PageRange{{Addr: 0x1000, Len: 0x1000}}}

// walk reads a raw stream the way a restore does: every record decoded,
// every page read.
func walk(b []byte, size int64) (*contents, error) {
	r, err := newStreamReader(bytes.NewReader(b), size)
	if err != nil {
		return nil, err
	}
	return readContents(r)
}

// baseline returns a real decompressed stream with every section type.
func baseline(t testing.TB) []byte {
	return decompress(t, writeContents(t, filledContents(fillMin), WriterOptions{}))
}

func TestReaderTruncatedEverywhere(t *testing.T) {
	b := baseline(t)
	if _, err := walk(b, 0); err != nil {
		t.Fatalf("walk(intact stream) = %v, want nil error", err)
	}
	for n := range len(b) {
		_, err := walk(b[:n], 0)
		var fe *FormatError
		if !errors.Is(err, ErrTruncated) || !errors.As(err, &fe) {
			t.Fatalf("walk(stream cut to %d of %d bytes) = %v, want a *FormatError that is ErrTruncated", n, len(b), err)
		}
		if fe.Offset > int64(n) {
			t.Errorf("walk(stream cut to %d bytes) error offset %d, want at most %d", n, fe.Offset, n)
		}
	}
}

func TestReaderCorruptByteEverywhere(t *testing.T) {
	b := baseline(t)
	for i := range len(b) {
		for _, flip := range []byte{0x01, 0x80} {
			bad := bytes.Clone(b)
			bad[i] ^= flip
			_, err := walk(bad, 0)
			var fe *FormatError
			var ve *VersionError
			if !errors.As(err, &fe) && !errors.As(err, &ve) {
				t.Fatalf("walk(byte %d xor %#x) = %v, want a *FormatError or *VersionError; stream:\n%s",
					i, flip, err, dumpHead(bad))
			}
		}
	}
}

func TestReaderErrors(t *testing.T) {
	pipe := func(fields ...byte) []byte { return fields }
	manyThreads := record(processSchema, &Process{PID: 1, Threads: make([]Thread, maxThreads+1)})
	manyGroups := record(processSchema, &Process{PID: 1, Identity: Identity{Groups: make([]uint32, maxGroups+1)}})
	// 200 threads with 65,535 empty pending signals each: 26 MB of
	// payload that would decode to 420 MB of Siginfo values.
	emptySignals := bytes.Repeat([]byte{11<<3 | 2, 0}, maxPending-1)
	thread := binary.AppendUvarint([]byte{10<<3 | 2}, uint64(len(emptySignals)))
	thread = append(thread, emptySignals...)
	amplified := bytes.Repeat(thread, 200)
	page := bytes.Repeat([]byte{7}, 4096)
	for _, tt := range []struct {
		name        string
		stream      []byte
		size        int64
		wantIs      error
		wantSection int
		wantType    SectionType
		wantText    string
	}{
		{"bad magic", append([]byte("KSUSNAX\x00"), rawFileHeader(1, 0)[8:]...), 0, ErrInvalid, -1, 0, "not a ksu snapshot"},
		{"header checksum", func() []byte { b := newStream().end(1, 0); b[13] ^= 1; return b }(), 0, ErrChecksum, -1, 0, "file header CRC-32C"},
		{"first section not meta", appendSection(rawFileHeader(1, 0), SectionProcess, nil), 0, ErrInvalid, 0, SectionProcess, "want meta"},
		{"page size not a power of two", appendSection(rawFileHeader(1, 0), SectionMeta, record(metaSchema, &Meta{PageSize: 4097})), 0,
			ErrInvalid, 0, SectionMeta, "page size 4097"},
		{"1 TiB pages section", appendSectionLen(newStream().b, SectionPages, 1<<40, nil), 0, ErrTooLarge, 1, SectionPages, "section length 1099511627776"},
		{"1 TiB unknown section", appendSectionLen(newStream().b, 99, 1<<40, nil), 0, ErrTooLarge, 1, 99, "limit 4294967296"},
		{"record over limit", appendSectionLen(newStream().b, SectionProcess, MaxRecordSize+1, nil), 0, ErrTooLarge, 1, SectionProcess, "process section length"},
		{"pages record length 2^31", appendSectionLen(newStream().b, SectionPages, 12, binary.LittleEndian.AppendUint32(nil, 1<<31)), 0,
			ErrTooLarge, 1, SectionPages, "pages record length 2147483648"},
		{"2^16+1 threads", newStream().add(SectionProcess, manyThreads).end(2, 0), 0, ErrTooLarge, 1, SectionProcess, "threads: more than 65536 elements"},
		{"lists decode past the budget", newStream().add(SectionProcess, amplified).end(2, 0), 0, ErrTooLarge, 1, SectionProcess,
			"lists decode to more than 256 MiB"},
		{"2^16+1 groups", newStream().add(SectionProcess, manyGroups).end(2, 0), 0, ErrTooLarge, 1, SectionProcess, "identity.groups: more than 65536"},
		{"bytes length 2^31", newStream().add(SectionPipe, pipe(3<<3|2, 0x80, 0x80, 0x80, 0x80, 0x08)).end(2, 0), 0,
			ErrTruncated, 1, SectionPipe, "data: length 2147483648 runs past"},
		{"wrong wire type", newStream().add(SectionPipe, pipe(1<<3|2, 0)).end(2, 0), 0, ErrInvalid, 1, SectionPipe, "id: wire type 2, want 0"},
		{"duplicate field", newStream().add(SectionPipe, pipe(1<<3, 5, 1<<3, 6)).end(2, 0), 0, ErrInvalid, 1, SectionPipe, "id: field 1 appears twice"},
		{"varint too long", newStream().add(SectionPipe, pipe(1<<3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)).end(2, 0), 0,
			ErrInvalid, 1, SectionPipe, "longer than 64 bits"},
		{"int32 overflow", newStream().add(SectionProcess, pipe(1<<3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)).end(2, 0), 0,
			ErrInvalid, 1, SectionProcess, "pid: value 17179869184 overflows int32"},
		{"bool of 2", newStream().add(SectionProcess, append([]byte{11<<3 | 2, 2}, 2<<3, 2)).end(2, 0), 0,
			ErrInvalid, 1, SectionProcess, "fds[0].close_on_exec: bool value 2"},
		{"field number 0", newStream().add(SectionPipe, pipe(0, 1)).end(2, 0), 0, ErrInvalid, 1, SectionPipe, "key: field number 0 out of range"},
		{"unknown wire type", newStream().add(SectionPipe, pipe(1<<3|5, 1)).end(2, 0), 0, ErrInvalid, 1, SectionPipe, "unknown wire type 5"},
		{"record after pages", newStream().add(SectionPages, pagesPayload(onePage, page)).add(SectionFile, nil).end(3, 4096), 0,
			ErrInvalid, 2, SectionFile, "file section after a page section"},
		{"second meta", newStream().add(SectionMeta, nil).end(2, 0), 0, ErrInvalid, 1, SectionMeta, "a second meta section"},
		{"missing end", newStream().add(SectionPipe, nil).b, 0, ErrTruncated, 2, 0, "before the end section"},
		{"data after end", append(newStream().end(1, 0), 0), 0, ErrInvalid, 1, SectionEnd, "data after the end section"},
		{"end section count", newStream().add(SectionPipe, nil).end(1, 0), 0, ErrInvalid, 2, SectionEnd, "counts 1 sections"},
		{"end page bytes", newStream().add(SectionPages, pagesPayload(onePage, page)).end(2, 0), 0, ErrInvalid, 2, SectionEnd, "0 page bytes"},
		{"page data short of ranges", newStream().add(SectionPages, pagesPayload(onePage, page[:4095])).end(2, 4096), 0,
			ErrInvalid, 1, SectionPages, "ranges hold 4096 bytes, the section has 4095"},
		{"unaligned range", newStream().add(SectionPages, pagesPayload(&Pages{PID: 1, Ranges: []PageRange{{Addr: 0x1001, Len: 0x1000}}}, page)).end(2, 4096), 0,
			ErrInvalid, 1, SectionPages, "not page aligned"},
		{"overlapping ranges", newStream().add(SectionPages, pagesPayload(&Pages{PID: 1, Ranges: []PageRange{{0x2000, 0x1000}, {0x1000, 0x2000}}}, nil)).end(2, 0), 0,
			ErrInvalid, 1, SectionPages, "range 1 at 0x1000 overlaps"},
		{"pages without owner", newStream().add(SectionPages, pagesPayload(&Pages{Ranges: onePage.Ranges}, page)).end(2, 4096), 0,
			ErrInvalid, 1, SectionPages, "exactly one must be set"},
		{"pages record checksum", func() []byte {
			payload := pagesPayload(onePage, page)
			payload[5] ^= 1 // inside the record; the section checksum still matches
			return newStream().add(SectionPages, payload).end(2, 4096)
		}(), 0, ErrChecksum, 1, SectionPages, "CRC-32C of the pages record"},
		{"section checksum", func() []byte {
			b := newStream().add(SectionPipe, []byte{1 << 3, 9}).end(2, 0)
			b[len(b)-23] ^= 1
			return b
		}(), 0,
			ErrChecksum, 1, SectionPipe, "CRC-32C of the section"},
		{"size from the archive header", newStream().end(1, 0), 5, ErrInvalid, 1, SectionEnd, "the archive header says 5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := walk(tt.stream, tt.size)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("walk() = %v, want a *FormatError; stream:\n%s", err, dumpHead(tt.stream))
			}
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("walk() = %v, want an error that is %v and contains %q", err, tt.wantIs, tt.wantText)
			}
			if fe.Section != tt.wantSection || fe.Type != tt.wantType {
				t.Errorf("walk() error in section %d (%v), want section %d (%v)", fe.Section, fe.Type, tt.wantSection, tt.wantType)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(tt.stream)) {
				t.Errorf("walk() error offset %d, want one within the %d-byte stream", fe.Offset, len(tt.stream))
			}
		})
	}
}

func TestFormatErrorText(t *testing.T) {
	b := newStream().add(SectionProcess, record(processSchema, &Process{PID: 1, Threads: make([]Thread, maxThreads+1)})).end(2, 0)
	_, err := walk(b, 0)
	// The process payload starts after the file header, the Meta section
	// and the process section's header. It holds the pid (2 bytes), then
	// one 2-byte field (key, zero length) per thread. The error points at
	// the content of the thread over the limit, past its 2 bytes.
	metaEnd := fileHeaderSize + sectionHeaderSize + len(record(metaSchema, testMeta())) + checksumSize
	offset := metaEnd + sectionHeaderSize + 2 + 2*maxThreads + 2
	want := "snapshot: section 1 (process), offset " + strconv.Itoa(offset) + ": threads: more than 65536 elements"
	if err == nil || err.Error() != want {
		t.Errorf("walk(too many threads) = %v, want %q", err, want)
	}
}

func TestReaderVersions(t *testing.T) {
	t.Run("unknown major", func(t *testing.T) {
		b := rawFileHeader(MajorVersion+1, 3)
		_, err := walk(append(b, "anything at all"...), 0)
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Major != MajorVersion+1 || ve.Minor != 3 || ve.Format != "snapshot" {
			t.Fatalf("walk(major %d) = %v, want a *VersionError for 2.3", MajorVersion+1, err)
		}
	})
	t.Run("newer minor", func(t *testing.T) {
		b := appendSection(rawFileHeader(MajorVersion, MinorVersion+7), SectionMeta, record(metaSchema, testMeta()))
		b = appendSection(b, SectionEnd, endPayload(1, 0))
		if _, err := walk(b, 0); err != nil {
			t.Errorf("walk(minor %d) = %v, want nil error", MinorVersion+7, err)
		}
	})
}

// TestReaderSkipsUnknown reads a stream from a newer minor version: an
// unknown section type among the records and among the pages, and
// unknown fields in a record.
func TestReaderSkipsUnknown(t *testing.T) {
	pipe := &Pipe{ID: 3, Capacity: 65536, Data: []byte("unread")}
	rec := record(pipeSchema, pipe)
	rec = binary.AppendUvarint(rec, 60<<3) // field 60, varint 150
	rec = binary.AppendUvarint(rec, 150)
	rec = binary.AppendUvarint(rec, 2000<<3|2) // field 2000, 3 bytes
	rec = append(rec, 3, 'n', 'e', 'w')
	page := bytes.Repeat([]byte{3}, 4096)
	b := newStream().
		add(100, []byte("future record")).
		add(SectionPipe, rec).
		add(SectionPages, pagesPayload(onePage, page)).
		add(101, bytes.Repeat([]byte{1}, 10000)).
		end(5, 4096)

	r, err := newStreamReader(bytes.NewReader(b), 0)
	if err != nil {
		t.Fatalf("newStreamReader() = %v", err)
	}
	var types []SectionType
	var gotPipe *Pipe
	for {
		s, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next() after %v = %v, want nil error", types, err)
		}
		types = append(types, s.Type)
		if s.Type == SectionPipe {
			if gotPipe, err = s.Pipe(); err != nil {
				t.Fatalf("Pipe() = %v, want nil error", err)
			}
		}
	}

	if diff := cmp.Diff([]SectionType{100, SectionPipe, SectionPages, 101}, types); diff != "" {
		t.Errorf("section types mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(pipe, gotPipe); diff != "" {
		t.Errorf("Pipe() with unknown fields mismatch (-want +got):\n%s", diff)
	}
}

// TestReaderSkipChecksPages leaves a page section unread and damages it:
// Next must still find the damage.
func TestReaderSkipChecksPages(t *testing.T) {
	page := bytes.Repeat([]byte{5}, 8192)
	twoPages := &Pages{PID: 1, Ranges: []PageRange{{0x1000, 0x2000}}}
	b := newStream().add(SectionPages, pagesPayload(twoPages, page)).end(2, 8192)
	for _, tt := range []struct {
		name    string
		read    int
		corrupt bool
		wantErr error
	}{
		{"skip intact", 0, false, nil},
		{"half read intact", 4096, false, nil},
		{"skip damaged", 0, true, ErrChecksum},
		{"half read damaged", 4096, true, ErrChecksum},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stream := bytes.Clone(b)
			if tt.corrupt {
				stream[len(stream)-30] ^= 0x10 // inside the page data, near its end
			}
			r, err := newStreamReader(bytes.NewReader(stream), 0)
			if err != nil {
				t.Fatalf("newStreamReader() = %v", err)
			}
			s, err := r.Next()
			if err != nil {
				t.Fatalf("Next() = %v, want the page section", err)
			}
			if _, err := io.ReadFull(s, make([]byte, tt.read)); err != nil {
				t.Fatalf("reading %d page bytes = %v", tt.read, err)
			}
			_, err = r.Next()
			if tt.wantErr == nil && !errors.Is(err, io.EOF) {
				t.Errorf("Next() after the pages = %v, want io.EOF", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Next() after the damaged pages = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSectionDecodeWrongType(t *testing.T) {
	b := newStream().add(SectionPipe, nil).end(2, 0)
	r, err := newStreamReader(bytes.NewReader(b), 0)
	if err != nil {
		t.Fatalf("newStreamReader() = %v", err)
	}
	s, err := r.Next()
	if err != nil {
		t.Fatalf("Next() = %v", err)
	}
	if _, err := s.Process(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Process() on a pipe section = %v, want an ErrInvalid error", err)
	}
}

func TestWriterRejects(t *testing.T) {
	page := make([]byte, 4096)
	for _, tt := range []struct {
		name     string
		run      func(w *Writer) error
		wantText string
		broken   bool // the writer is unusable afterwards
	}{
		{"process before meta", func(w *Writer) error { return w.WriteProcess(&Process{PID: 1}) }, "meta section must come first", false},
		{"second meta", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			return w.WriteMeta(testMeta())
		}, "only one", false},
		{"bad page size", func(w *Writer) error { return w.WriteMeta(&Meta{PageSize: 3000}) }, "page size 3000", false},
		{"pid 0", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			return w.WriteProcess(&Process{})
		}, "pid 0 is not positive", false},
		{"file id 0", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			return w.WriteFile(&File{Kind: FileRegular})
		}, "id is 0", false},
		{"record after pages", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			_ = w.WritePages(onePage, bytes.NewReader(page))
			return w.WritePipe(&Pipe{ID: 1})
		}, "before the page sections", false},
		{"overlapping ranges", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			return w.WritePages(&Pages{PID: 1, Ranges: []PageRange{{0x1000, 0x2000}, {0x2000, 0x1000}}}, bytes.NewReader(page))
		}, "overlaps", false},
		{"too many threads", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			return w.WriteProcess(&Process{PID: 1, Threads: make([]Thread, maxThreads+1)})
		}, "threads: 65537 elements, limit 65536", false},
		{"time out of range", func(w *Writer) error {
			m := testMeta()
			m.Time = m.Time.AddDate(500, 0, 0)
			return w.WriteMeta(m)
		}, "outside the years 1678 to 2262", false},
		{"short page source", func(w *Writer) error {
			_ = w.WriteMeta(testMeta())
			return w.WritePages(onePage, bytes.NewReader(page[:100]))
		}, "read page data at byte 100 of 4096", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(io.Discard, WriterOptions{})
			if err != nil {
				t.Fatalf("NewWriter() = %v", err)
			}
			defer w.Close()
			err = tt.run(w)
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantText)
			}
			if w.stage == stageMeta {
				_ = w.WriteMeta(testMeta())
			}
			err = w.WriteSharedMemory(&SharedMemory{ID: 1})
			if stage := w.stage; stage == stagePages {
				err = w.WritePages(onePage, bytes.NewReader(page))
			}
			if broken := err != nil; broken != tt.broken {
				t.Errorf("writing after the rejection = %v, want broken %v", err, tt.broken)
			}
		})
	}
}
