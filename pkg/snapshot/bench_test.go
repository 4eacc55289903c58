package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The page benchmarks move 256 MiB of process memory through a snapshot,
// as the dump and the restore do. Run them with
//
//	go test -run '^$' -bench Pages -benchtime 3x ./pkg/snapshot
//
// MB/s counts all 256 MiB, zero pages included, so it is the rate at
// which a process's memory is dumped or restored.

const (
	benchMemory   = 256 << 20
	benchPageSize = 4096
	benchBase     = 0x7f00_0000_0000 // where the memory starts in the fake process
	benchBatch    = 16 << 20         // memory scanned per page section
)

var (
	benchImageOnce sync.Once
	benchImageData []byte
)

// benchImage returns the memory of the fake process: runs of 1 to 64
// pages, alternately zero and not, so that about half the pages are zero.
// Of the runs that are not zero, half hold random bytes, which do not
// compress, and half hold text-like records, which compress well.
func benchImage() []byte {
	benchImageOnce.Do(func() {
		r := rand.New(rand.NewPCG(42, 42))
		img := make([]byte, benchMemory)
		for off, run := 0, 0; off < len(img); run++ {
			n := min((1+r.IntN(64))*benchPageSize, len(img)-off)
			switch run % 4 {
			case 1:
				fillRandom(img[off:off+n], r)
			case 3:
				fillText(img[off:off+n], r)
			}
			off += n
		}
		benchImageData = img
	})
	return benchImageData
}

func fillRandom(b []byte, r *rand.Rand) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

func fillText(b []byte, r *rand.Rand) {
	words := []string{"session", "user", "key", "value", "expires", "GET", "/index.html", "200", "\n"}
	var buf bytes.Buffer
	for buf.Len() < len(b) {
		fmt.Fprintf(&buf, "%s=%d ", words[r.IntN(len(words))], r.IntN(100000))
	}
	copy(b, buf.Bytes())
}

var zeroPage = make([]byte, benchPageSize)

// nonZeroRanges returns the runs of pages in mem, which starts at addr,
// that are not all zero: what a dump's caller passes to WritePages.
func nonZeroRanges(mem []byte, addr uint64) []PageRange {
	var ranges []PageRange
	for off := 0; off < len(mem); off += benchPageSize {
		if bytes.Equal(mem[off:off+benchPageSize], zeroPage) {
			continue
		}
		a := addr + uint64(off)
		if last := len(ranges) - 1; last >= 0 && ranges[last].Addr+ranges[last].Len == a {
			ranges[last].Len += benchPageSize
		} else {
			ranges = append(ranges, PageRange{Addr: a, Len: benchPageSize})
		}
	}
	return ranges
}

// rangeReader reads the bytes of ranges from mem, which starts at base,
// one range after the other: what a dump reads from /proc/PID/mem or
// with process_vm_readv.
type rangeReader struct {
	mem    []byte
	base   uint64
	ranges []PageRange
	off    uint64 // read offset into ranges[0]
}

func (rr *rangeReader) Read(p []byte) (int, error) {
	if len(rr.ranges) == 0 {
		return 0, io.EOF
	}
	r := rr.ranges[0]
	start := r.Addr - rr.base + rr.off
	n := copy(p, rr.mem[start:r.Addr-rr.base+r.Len])
	rr.off += uint64(n)
	if rr.off == r.Len {
		rr.ranges, rr.off = rr.ranges[1:], 0
	}
	return n, nil
}

// writeImage dumps mem as pid's memory at benchBase, skipping zero pages.
func writeImage(w *Writer, pid int32, mem []byte) error {
	for off := 0; off < len(mem); off += benchBatch {
		batch := mem[off:min(off+benchBatch, len(mem))]
		addr := benchBase + uint64(off)
		ranges := nonZeroRanges(batch, addr)
		if len(ranges) == 0 {
			continue
		}
		p := &Pages{PID: pid, Ranges: ranges}
		if err := w.WritePages(p, &rangeReader{mem: batch, base: addr, ranges: ranges}); err != nil {
			return err
		}
	}
	return nil
}

// countingWriter discards what it is given and counts it, so the write
// benchmark does not measure a growing output buffer.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// encodeImage writes benchImage as a snapshot to dst.
func encodeImage(b testing.TB, dst io.Writer, level zstd.EncoderLevel) {
	w, err := NewWriter(dst, WriterOptions{Level: level})
	if err != nil {
		b.Fatal(err)
	}
	m := testMeta()
	m.PageSize = benchPageSize
	if err := w.WriteMeta(m); err != nil {
		b.Fatal(err)
	}
	if err := writeImage(w, 100, benchImage()); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

var benchLevels = []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedFastest}

func BenchmarkWritePages(b *testing.B) {
	for _, level := range benchLevels {
		b.Run(level.String(), func(b *testing.B) {
			benchImage()
			b.SetBytes(benchMemory)
			var out countingWriter
			for b.Loop() {
				out = countingWriter{}
				encodeImage(b, &out, level)
			}
			b.ReportMetric(float64(out.n)/(1<<20), "MiB-compressed")
		})
	}
}

// readImage restores a snapshot's pages into target, which stands for
// the process's memory at benchBase: each range is read straight into
// its place.
func readImage(r *Reader, target []byte) error {
	for {
		s, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, pr := range s.Pages().Ranges {
			off := pr.Addr - benchBase
			if _, err := io.ReadFull(s, target[off:off+pr.Len]); err != nil {
				return err
			}
		}
	}
}

func BenchmarkReadPages(b *testing.B) {
	for _, level := range benchLevels {
		b.Run(level.String(), func(b *testing.B) {
			var buf bytes.Buffer
			encodeImage(b, &buf, level)
			enc := buf.Bytes()
			target := make([]byte, benchMemory)
			b.SetBytes(benchMemory)
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(enc), ReaderOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if err := readImage(r, target); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
			b.StopTimer()
			if !bytes.Equal(target, benchImage()) {
				b.Fatal("restored memory differs from the dumped memory")
			}
			b.ReportMetric(float64(len(enc))/(1<<20), "MiB-compressed")
		})
	}
}
