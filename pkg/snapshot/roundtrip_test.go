package snapshot

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/klauspost/compress/zstd"
)

// fillMode selects the boundary value that fill puts in every field.
type fillMode int

const (
	fillMax   fillMode = iota // largest integers, long strings and bytes, several elements
	fillMin                   // smallest integers, one-byte strings and bytes, one element
	fillLarge                 // large byte slices (1 MiB) and strings (64 KiB)
)

func (m fillMode) String() string {
	return [...]string{"max", "min", "large"}[m]
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
)

// fill sets every field reachable from v to the boundary value of mode,
// recursing through structs, pointers and slices. It uses reflection so
// that a field added to a type without a field number fails the round
// trip instead of being skipped by the test.
func fill(v reflect.Value, mode fillMode) {
	switch {
	case v.Type() == timeType:
		times := map[fillMode]time.Time{
			fillMax:   time.Unix(0, math.MaxInt64),
			fillMin:   time.Unix(0, math.MinInt64),
			fillLarge: time.Unix(0, 0),
		}
		v.Set(reflect.ValueOf(times[mode]))
		return
	case v.Type() == durationType:
		durations := map[fillMode]time.Duration{fillMax: math.MaxInt64, fillMin: math.MinInt64, fillLarge: -1}
		v.SetInt(int64(durations[mode]))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(mode != fillMin)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		if mode == fillMin {
			v.SetInt(-1 << (bits - 1))
		} else {
			v.SetInt(1<<(bits-1) - 1)
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if mode == fillMin {
			v.SetUint(1)
		} else {
			v.SetUint(math.MaxUint64 >> (64 - v.Type().Bits()))
		}
	case reflect.String:
		v.SetString(strings.Repeat("s", map[fillMode]int{fillMax: 255, fillMin: 1, fillLarge: 64 << 10}[mode]))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), mode)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), mode)
			}
		}
	case reflect.Slice:
		fillSlice(v, mode)
	}
}

func fillSlice(v reflect.Value, mode fillMode) {
	if v.Type().Elem().Kind() == reflect.Uint8 {
		n := map[fillMode]int{fillMax: 300, fillMin: 1, fillLarge: 1 << 20}[mode]
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		v.SetBytes(b)
		return
	}
	n := map[fillMode]int{fillMax: 3, fillMin: 1, fillLarge: 2}[mode]
	v.Set(reflect.MakeSlice(v.Type(), n, n))
	for i := range n {
		fill(v.Index(i), mode)
	}
}

// roundTrip encodes v with s, decodes the result and returns it with the
// encoded record.
func roundTrip[T any](t *testing.T, s *schema[T], v *T) (*T, []byte) {
	t.Helper()
	var e encoder
	s.encode(&e, v)
	if e.err != nil {
		t.Fatalf("%s encode: %v", s.name, e.err)
	}
	got := new(T)
	if err := s.decodeBytes(e.buf, 0, got); err != nil {
		t.Fatalf("%s decode = %v, want nil error; record:\n%s", s.name, err, hex.Dump(e.buf))
	}
	return got, e.buf
}

// equateEmpty treats nil and empty slices as equal, because the encoding
// leaves both out, and compares byte slices with bytes.Equal, because
// cmp walks them element by element and megabyte slices take minutes.
var equateEmpty = cmp.Options{
	cmp.FilterValues(func(a, b any) bool {
		_, isBytes := a.([]byte)
		return !isBytes
	}, cmpopts.EquateEmpty()),
	cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) }),
}

func testRecordRoundTrip[T any](t *testing.T, s *schema[T]) {
	for _, mode := range []fillMode{fillMax, fillMin, fillLarge} {
		t.Run(s.name+"/"+mode.String(), func(t *testing.T) {
			want := new(T)
			fill(reflect.ValueOf(want).Elem(), mode)
			got, rec := roundTrip(t, s, want)
			if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
				t.Errorf("%s round trip mismatch (-want +got):\n%s\nrecord:\n%s", s.name, diff, hex.Dump(rec[:min(len(rec), 4096)]))
			}
		})
	}
	t.Run(s.name+"/zero", func(t *testing.T) {
		got, rec := roundTrip(t, s, new(T))
		if len(rec) != 0 {
			t.Errorf("%s zero value encodes to %d bytes, want 0:\n%s", s.name, len(rec), hex.Dump(rec))
		}
		if diff := cmp.Diff(new(T), got, equateEmpty); diff != "" {
			t.Errorf("%s zero round trip mismatch (-want +got):\n%s", s.name, diff)
		}
	})
}

func TestRecordRoundTrip(t *testing.T) {
	testRecordRoundTrip(t, metaSchema)
	testRecordRoundTrip(t, endSchema)
	testRecordRoundTrip(t, processSchema)
	testRecordRoundTrip(t, fileSchema)
	testRecordRoundTrip(t, pipeSchema)
	testRecordRoundTrip(t, sharedMemorySchema)
	testRecordRoundTrip(t, pagesSchema)
}

// testMeta is a valid Meta for stream tests.
func testMeta() *Meta {
	return &Meta{
		KernelRelease: "6.1.0-50-cloud-amd64",
		BootID:        "0f6c1b52-5f0e-4c55-9d1c-5d7a4c1c2f10",
		Machine:       "x86_64",
		PageSize:      4096,
		Monotonic:     1234 * time.Second,
		Boottime:      1300 * time.Second,
		Time:          time.Unix(1700000000, 5),
		Hostname:      "guest",
		Producer:      "ksu test",
		VDSO:          []byte("\x7fELF\x02\x01\x01 vdso image"),
		Links: []Link{
			{Name: "lo", MTU: 65536, Up: true, Addrs: []Addr{{Prefix: "127.0.0.1/8"}, {Prefix: "::1/128"}}},
			{Name: "eth0", MAC: []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, MTU: 1500, Up: true,
				Addrs: []Addr{{Prefix: "10.0.2.15/24"}}},
		},
		Routes: []Route{
			{Gateway: "10.0.2.2", Link: "eth0", Priority: 100, Protocol: 4},
			{Dst: "10.0.2.0/24", Link: "eth0", Src: "10.0.2.15", Scope: 253},
		},
	}
}

// contents is everything a test stream holds, in the order Writer takes
// it.
type contents struct {
	Meta      *Meta
	Shm       []*SharedMemory
	Pipes     []*Pipe
	Files     []*File
	Processes []*Process
	Pages     []pagesData
}

type pagesData struct {
	Pages *Pages
	Data  []byte
}

func writeContents(t testing.TB, c *contents, opts WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	writeContentsTo(t, &buf, c, opts)
	return buf.Bytes()
}

// writeContentsTo writes c as a snapshot stream to dst and returns the
// closed Writer.
func writeContentsTo(t testing.TB, dst io.Writer, c *contents, opts WriterOptions) *Writer {
	t.Helper()
	w, err := NewWriter(dst, opts)
	if err != nil {
		t.Fatalf("NewWriter() = %v", err)
	}
	check := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s = %v, want nil error", what, err)
		}
	}
	check("WriteMeta", w.WriteMeta(c.Meta))
	for _, s := range c.Shm {
		check("WriteSharedMemory", w.WriteSharedMemory(s))
	}
	for _, p := range c.Pipes {
		check("WritePipe", w.WritePipe(p))
	}
	for _, f := range c.Files {
		check("WriteFile", w.WriteFile(f))
	}
	for _, p := range c.Processes {
		check("WriteProcess", w.WriteProcess(p))
	}
	for _, p := range c.Pages {
		check("WritePages", w.WritePages(p.Pages, bytes.NewReader(p.Data)))
	}
	check("Close", w.Close())
	return w
}

// readContents reads a whole stream back into contents.
func readContents(r *Reader) (*contents, error) {
	m := r.Meta()
	c := &contents{Meta: &m}
	for {
		s, err := r.Next()
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		if err := readSection(c, s); err != nil {
			return c, err
		}
	}
}

func readSection(c *contents, s *Section) error {
	var err error
	switch s.Type {
	case SectionSharedMemory:
		var v *SharedMemory
		if v, err = s.SharedMemory(); err == nil {
			c.Shm = append(c.Shm, v)
		}
	case SectionPipe:
		var v *Pipe
		if v, err = s.Pipe(); err == nil {
			c.Pipes = append(c.Pipes, v)
		}
	case SectionFile:
		var v *File
		if v, err = s.File(); err == nil {
			c.Files = append(c.Files, v)
		}
	case SectionProcess:
		var v *Process
		if v, err = s.Process(); err == nil {
			c.Processes = append(c.Processes, v)
		}
	case SectionPages:
		var data []byte
		if data, err = io.ReadAll(s); err == nil {
			c.Pages = append(c.Pages, pagesData{Pages: s.Pages(), Data: data})
		}
	}
	return err
}

// decompress returns the decompressed stream, for dumps in failure
// messages.
func decompress(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("zstd.NewReader() = %v", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Logf("decompress: %v", err)
	}
	return out
}

// dumpHead returns a hex dump of at most the first 2 KiB of b.
func dumpHead(b []byte) string {
	if len(b) > 2048 {
		return hex.Dump(b[:2048]) + "...\n"
	}
	return hex.Dump(b)
}

func filledContents(mode fillMode) *contents {
	c := &contents{Meta: testMeta()}
	for range 2 {
		var shm SharedMemory
		var pipe Pipe
		var file File
		var proc Process
		fill(reflect.ValueOf(&shm).Elem(), mode)
		fill(reflect.ValueOf(&pipe).Elem(), mode)
		fill(reflect.ValueOf(&file).Elem(), mode)
		fill(reflect.ValueOf(&proc).Elem(), mode)
		proc.PID = 1 // the writer rejects pids below 1
		c.Shm = append(c.Shm, &shm)
		c.Pipes = append(c.Pipes, &pipe)
		c.Files = append(c.Files, &file)
		c.Processes = append(c.Processes, &proc)
	}
	data := bytes.Repeat([]byte{0xa5, 0, 1, 2}, 3*4096/4)
	c.Pages = []pagesData{
		{&Pages{PID: 1, Ranges: []PageRange{{Addr: 0x1000, Len: 0x1000}, {Addr: 0x7fff_ffff_e000, Len: 0x2000}}}, data},
		{&Pages{ShmID: math.MaxUint64, Ranges: []PageRange{{Addr: 0, Len: 0x1000}}}, data[:4096]},
	}
	return c
}

func TestStreamRoundTrip(t *testing.T) {
	for _, mode := range []fillMode{fillMax, fillMin, fillLarge} {
		for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
			t.Run(mode.String()+"/"+level.String(), func(t *testing.T) {
				want := filledContents(mode)
				enc := writeContents(t, want, WriterOptions{Level: level})
				r, err := NewReader(bytes.NewReader(enc), ReaderOptions{})
				if err != nil {
					t.Fatalf("NewReader() = %v, want nil error; stream:\n%s", err, dumpHead(decompress(t, enc)))
				}
				defer r.Close()
				got, err := readContents(r)
				if err != nil {
					t.Fatalf("reading the stream = %v, want nil error; stream:\n%s", err, dumpHead(decompress(t, enc)))
				}
				if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
					t.Errorf("stream round trip mismatch (-want +got):\n%s\nstream:\n%s", diff, dumpHead(decompress(t, enc)))
				}
			})
		}
	}
}
