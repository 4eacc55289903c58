package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fuzz targets. Run one at a time, for example:
//
//	go test -run '^$' -fuzz '^FuzzReader$' -fuzztime 60s -fuzzminimizetime 10s -parallel 1 ./pkg/snapshot
//
// Inputs that failed once are kept under testdata/fuzz and rerun by
// every go test.

// fixChecksums returns a copy of a decompressed stream with the file
// header's and every framed section's CRC-32C recomputed, so that the
// fuzzer's mutations get past the checksums into the decoders.
func fixChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) < fileHeaderSize {
		return b
	}
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	for pos := fileHeaderSize; len(b)-pos >= sectionHeaderSize+checksumSize; {
		length := binary.LittleEndian.Uint64(b[pos+4:])
		if length > uint64(len(b)-pos-sectionHeaderSize-checksumSize) {
			break
		}
		end := pos + sectionHeaderSize + int(length)
		if SectionType(binary.LittleEndian.Uint32(b[pos:])) == SectionPages {
			fixPagesRecordChecksum(b[pos+sectionHeaderSize : end])
		}
		binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[pos:end], castagnoli))
		pos = end + checksumSize
	}
	return b
}

// fixPagesRecordChecksum recomputes the CRC-32C of the Pages record at
// the start of a page section's payload, if the payload can hold it.
func fixPagesRecordChecksum(payload []byte) {
	if len(payload) < 4+checksumSize {
		return
	}
	recLen := binary.LittleEndian.Uint32(payload)
	if uint64(recLen) > uint64(len(payload)-4-checksumSize) {
		return
	}
	end := 4 + int(recLen)
	binary.LittleEndian.PutUint32(payload[end:], crc32.Checksum(payload[:end], castagnoli))
}

// checkErrorContract fails the test unless err is nil or one of the
// reader's documented error types.
func checkErrorContract(t *testing.T, err error) {
	var fe *FormatError
	var ve *VersionError
	if err != nil && !errors.As(err, &fe) && !errors.As(err, &ve) {
		t.Fatalf("reader error %T %v, want a *FormatError or *VersionError", err, err)
	}
}

// seedStreams returns small decompressed streams with every section
// type, some written by the Writer and some built by hand with section
// types and fields the Writer never writes. Small seeds matter: the
// fuzzer minimizes every new input, which takes long for large ones.
func seedStreams(f *testing.F) [][]byte {
	page := bytes.Repeat([]byte{1, 2, 3, 4}, 1024)
	var seeds [][]byte
	for _, mode := range []fillMode{fillMin, fillMax} {
		c := filledContents(mode)
		c.Meta.PageSize = 1024
		c.Pages = []pagesData{{&Pages{PID: 1, Ranges: []PageRange{{Addr: 0x400, Len: 0x400}}}, page[:1024]}}
		c.Shm, c.Pipes, c.Files, c.Processes = c.Shm[:1], c.Pipes[:1], c.Files[:1], c.Processes[:1]
		seeds = append(seeds, decompress(f, writeContents(f, c, WriterOptions{})))
	}
	return append(seeds,
		newStream().add(100, []byte("unknown")).add(SectionPages, pagesPayload(onePage, page)).end(3, 4096),
		newStream().add(SectionFile, record(fileSchema, &File{ID: 1, Kind: FileEpoll,
			Epoll: &Epoll{Targets: []EpollTarget{{FD: 3, File: 2, Events: 1, Data: 9}}}})).end(2, 0),
	)
}

func FuzzReader(f *testing.F) {
	for _, s := range seedStreams(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = fixChecksums(data)
		}
		c, err := walk(data, 0)
		checkErrorContract(t, err)
		if err == nil && c.Meta.PageSize == 0 {
			t.Fatalf("walk() accepted a stream with page size 0")
		}
	})
}

func FuzzCompressedReader(f *testing.F) {
	f.Add(writeContents(f, filledContents(fillMin), WriterOptions{}))
	f.Add(writeContents(f, filledContents(fillMin), WriterOptions{Level: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), ReaderOptions{Concurrency: 1})
		checkErrorContract(t, err)
		if err != nil {
			return
		}
		defer r.Close()
		_, err = readContents(r)
		checkErrorContract(t, err)
	})
}

// recordCheck decodes data as one record type and, if that succeeds,
// checks that encoding the result and decoding again gives the same
// value and the same bytes.
type recordCheck func(t *testing.T, data []byte)

func checkRecord[T any](s *schema[T]) recordCheck {
	return func(t *testing.T, data []byte) {
		v := new(T)
		err := s.decodeBytes(data, 0, v)
		var fe *fieldError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("%s decode error %T %v, want a *fieldError", s.name, err, err)
		}
		if err != nil {
			return
		}
		first := record(s, v)
		again := new(T)
		if err := s.decodeBytes(first, 0, again); err != nil {
			t.Fatalf("%s decode of its own encoding = %v", s.name, err)
		}
		if diff := cmp.Diff(v, again, equateEmpty); diff != "" {
			t.Fatalf("%s re-encoding mismatch (-first +second):\n%s", s.name, diff)
		}
		if second := record(s, again); !bytes.Equal(first, second) {
			t.Fatalf("%s encoding is not stable:\n%s\nthen\n%s", s.name, dumpHead(first), dumpHead(second))
		}
	}
}

var recordChecks = []recordCheck{
	checkRecord(metaSchema),
	checkRecord(processSchema),
	checkRecord(fileSchema),
	checkRecord(pipeSchema),
	checkRecord(sharedMemorySchema),
	checkRecord(pagesSchema),
	checkRecord(endSchema),
}

func FuzzRecord(f *testing.F) {
	// The large records get the smaller fillMin values, for the same
	// reason seedStreams keeps its streams small.
	c, small := filledContents(fillMax), filledContents(fillMin)
	f.Add(uint8(0), record(metaSchema, c.Meta))
	f.Add(uint8(1), record(processSchema, small.Processes[0]))
	f.Add(uint8(2), record(fileSchema, small.Files[0]))
	f.Add(uint8(3), record(pipeSchema, c.Pipes[0]))
	f.Add(uint8(4), record(sharedMemorySchema, c.Shm[0]))
	f.Add(uint8(5), record(pagesSchema, c.Pages[0].Pages))
	f.Add(uint8(6), endPayload(3, 4096))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		recordChecks[int(kind)%len(recordChecks)](t, data)
	})
}

func FuzzArchiveHeader(f *testing.F) {
	h := ArchiveHeader{Version: ArchiveVersion, KernelRelease: "6.12.117+deb12-cloud-amd64",
		Size: 1 << 40, CompressedSize: 3<<30 + 5, Checksum: 0xdeadbeef, PartSize: DefaultPartSize, Parts: 4}
	b, err := h.MarshalBinary()
	if err != nil {
		f.Fatalf("MarshalBinary() = %v", err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var got ArchiveHeader
		if err := got.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := got.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v) of a decoded header = %v", got, err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("MarshalBinary(UnmarshalBinary(%x)) = %x, want the input", data, again)
		}
	})
}
