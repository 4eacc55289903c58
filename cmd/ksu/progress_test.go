package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
)

// fakeClock returns a clock that a test moves forward by hand.
func fakeClock() (now func() time.Time, advance func(time.Duration)) {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time { return t }, func(d time.Duration) { t = t.Add(d) }
}

// screen returns what a terminal shows after out: each "\r" moves the
// cursor to the start of the line, and later bytes overwrite earlier ones.
func screen(out string) string {
	var line []byte
	col := 0
	for i := 0; i < len(out); i++ {
		switch c := out[i]; {
		case c == '\r':
			col = 0
		case c == '\n':
			line, col = append(line, '\n'), 0
		case col < len(line):
			line[col] = c
			col++
		default:
			line = append(line, c)
			col++
		}
	}
	return strings.TrimRight(string(line), " ")
}

func TestProgressLineDraws(t *testing.T) {
	var out bytes.Buffer
	now, advance := fakeClock()
	p := &progressLine{w: &out, now: now}

	p.begin("freeze", "2 process trees")
	if got, want := screen(out.String()), "ksu: freeze: 2 process trees, 0.0s"; got != want {
		t.Errorf("after begin, screen = %q, want %q", got, want)
	}
	if strings.Contains(out.String(), "\n") {
		t.Errorf("begin wrote a newline: %q", out.String())
	}

	p.begin("dump", "0 B")
	advance(1500 * time.Millisecond)
	p.written = 3 << 20
	p.bytes(10<<20, 40<<20)
	want := "ksu: dump: 10.0 MiB of about 40.0 MiB (25%), 3.0 MiB compressed, 1.5s"
	if got := screen(out.String()); got != want {
		t.Errorf("after bytes, screen = %q, want %q", got, want)
	}

	// A shorter line must blank what the longer one left.
	p.begin("load", "x")
	if got, want := screen(out.String()), "ksu: load: x, 0.0s"; got != want {
		t.Errorf("after a shorter line, screen = %q, want %q", got, want)
	}

	p.clear()
	if got := screen(out.String()); got != "" {
		t.Errorf("after clear, screen = %q, want an empty line", got)
	}
	if !strings.HasSuffix(out.String(), "\r") {
		t.Errorf("clear output %q does not end with \\r, want the cursor at the line start", out.String())
	}
}

func TestProgressLineBytes(t *testing.T) {
	for _, tt := range []struct {
		name        string
		done, total uint64
		want        string
	}{
		{"unknown total", 5 << 10, 0, "ksu: dump: 5.0 KiB, 0.0s"},
		{"half", 1 << 20, 2 << 20, "ksu: dump: 1.0 MiB of about 2.0 MiB (50%), 0.0s"},
		{"done", 2 << 20, 2 << 20, "ksu: dump: 2.0 MiB of about 2.0 MiB (100%), 0.0s"},
		{"past the estimate", 3 << 20, 2 << 20, "ksu: dump: 3.0 MiB (estimate was 2.0 MiB), 0.0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			now, advance := fakeClock()
			p := &progressLine{w: &out, now: now, step: "dump", start: now()}
			advance(progressInterval)
			p.start = now()
			p.bytes(tt.done, tt.total)
			if got := screen(out.String()); got != tt.want {
				t.Errorf("bytes(%d, %d) shows %q, want %q", tt.done, tt.total, got, tt.want)
			}
		})
	}
}

func TestProgressLineThrottles(t *testing.T) {
	var out bytes.Buffer
	now, advance := fakeClock()
	p := &progressLine{w: &out, now: now}
	p.begin("dump", "0 B")
	drawn := out.Len()

	p.bytes(1, 0)
	if out.Len() != drawn {
		t.Errorf("bytes right after begin wrote %q, want nothing before %v", out.String()[drawn:], progressInterval)
	}
	advance(progressInterval)
	p.bytes(1, 0)
	if out.Len() == drawn {
		t.Errorf("bytes after %v wrote nothing, want a redraw", progressInterval)
	}
}

func TestProgressOffTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := newProgress(f)
	if p != nil {
		t.Fatalf("newProgress(regular file) = %+v, want nil", p)
	}
	// Every method must be a no-op on nil.
	p.begin("freeze", "1 process tree")
	p.bytes(1, 2)
	p.clear()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 0 {
		t.Errorf("progress off a terminal wrote %d bytes, want 0", fi.Size())
	}
}

func TestProgressWriterCounts(t *testing.T) {
	var dst bytes.Buffer
	now, _ := fakeClock()
	p := &progressLine{w: &bytes.Buffer{}, now: now}
	w := progressWriter{w: &dst, p: p}
	for _, s := range []string{"abc", "", "defgh"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatalf("Write(%q) = %v, want nil", s, err)
		}
	}
	if p.written != 8 {
		t.Errorf("after 8 bytes, written = %d, want 8", p.written)
	}
	if got, want := dst.String(), "abcdefgh"; got != want {
		t.Errorf("destination = %q, want %q", got, want)
	}
}

func TestTrackDumpExpectedPages(t *testing.T) {
	var out bytes.Buffer
	now, advance := fakeClock()
	p := &progressLine{w: &out, now: now}
	p.expectPages(4 << 20)

	opts := dump.Options{PIDs: []int{4242}}
	p.trackDump(io.Discard, &opts)
	opts.Progress(0) // the first report of the dump ends the freeze step
	advance(time.Second)
	opts.Progress(1 << 20)

	want := "ksu: dump: 1.0 MiB of about 4.0 MiB (25%), 1.0s"
	if got := screen(out.String()); got != want {
		t.Errorf("screen after 1 MiB of an expected 4 MiB = %q, want %q", got, want)
	}
}

// TestIntegrationProgressDump dumps a sleep process through trackDump and
// checks that the line went from the freeze to the dump's byte counts.
func TestIntegrationProgressDump(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to trace a process")
	}
	// The child must not inherit descriptors that the test binary got
	// from its own parent, such as a pipe of the shell that runs go
	// test: the dump rejects a pipe whose other end is outside the tree.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		t.Fatalf("mark inherited descriptors close-on-exec: %v", err)
	}
	pid := startChild(t, "sleep", "60")
	var out bytes.Buffer
	p := &progressLine{w: &out, now: time.Now}
	opts := dump.Options{PIDs: []int{pid}, Exit: dump.ExitRunning, Producer: "progress test"}
	w := p.trackDump(io.Discard, &opts)
	stats, err := dump.Dump(w, opts)
	if err != nil {
		t.Fatalf("dump.Dump(sleep %d) = %v, want nil", pid, err)
	}
	p.bytes(stats.Pages, 0) // not drawn if within progressInterval

	if !strings.Contains(out.String(), "ksu: freeze: 1 process tree, ") {
		t.Errorf("progress output = %q, want the freeze step", out.String())
	}
	if !strings.Contains(out.String(), "ksu: dump: ") {
		t.Errorf("progress output = %q, want the dump step", out.String())
	}
	if p.written == 0 {
		t.Errorf("compressed bytes counted = 0, want the snapshot's length")
	}
	if stats.Pages == 0 {
		t.Errorf("dump.Dump(sleep %d) wrote 0 bytes of pages, want the pages sleep touched", pid)
	}
}
