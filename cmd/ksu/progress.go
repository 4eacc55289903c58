package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/ksu-project/ksu/pkg/dump"
)

// progressInterval is the shortest time between two redraws of a
// progress line, so that a fast dump does not flood the terminal.
const progressInterval = 100 * time.Millisecond

// progressLine shows the running step of ksu update on one terminal
// line, which each update rewrites in place after a carriage return.
// A nil *progressLine does nothing, which is what newProgress returns
// off a terminal: there the log lines already record each phase.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	step  string    // e.g. "dump"
	start time.Time // when step began
	drawn time.Time // when the line was last written
	width int       // bytes of the line on the screen, to blank on redraw
	// written counts the bytes through the writer of trackDump.
	written uint64
	// pages is the estimate of the page bytes the dump will write, 0
	// when unknown.
	pages uint64
}

// progress is the progress line of the running ksu update, nil off a
// terminal and for the other commands.
var progress *progressLine

// newProgress returns a progress line on f when f is a terminal, or nil.
func newProgress(f *os.File) *progressLine {
	if !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progressLine{w: f, now: time.Now}
}

// begin starts step and draws "step: detail" at once.
func (p *progressLine) begin(step, detail string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step, p.start = step, p.now()
	p.draw(detail)
}

// expectPages records the estimate of the page bytes that the next dump
// writes, which trackDump shows as the total.
func (p *progressLine) expectPages(n uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pages = n
}

// trackDump shows the dump of opts.PIDs on p. The step is "freeze" until
// the first page contents are written. Then it is "dump", with the page
// bytes written, the estimate given to expectPages, and the compressed
// bytes written through the returned writer, which wraps w. The
// compression has no step of its own because zstd compresses while the
// dump writes. Without a progress line, trackDump returns w and leaves
// opts alone.
func (p *progressLine) trackDump(w io.Writer, opts *dump.Options) io.Writer {
	if p == nil {
		return w
	}
	p.mu.Lock()
	total := p.pages
	p.mu.Unlock()
	p.begin("freeze", plural(len(opts.PIDs), "process tree", "process trees"))
	opts.Progress = func(done uint64) {
		if p.stepIs("freeze") {
			p.begin("dump", formatBytes(done))
		}
		p.bytes(done, total)
	}
	return progressWriter{w: w, p: p}
}

// stepIs reports whether the line shows step.
func (p *progressLine) stepIs(step string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.step == step
}

// bytes redraws the line with done of about total bytes, at most once per
// progressInterval. total 0 means unknown. total is an estimate, so done
// can pass it, and then no percentage is shown.
func (p *progressLine) bytes(done, total uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now().Sub(p.drawn) < progressInterval {
		return
	}
	detail := formatBytes(done)
	switch {
	case total > 0 && done <= total:
		detail += fmt.Sprintf(" of about %s (%d%%)", formatBytes(total), done*100/total)
	case total > 0:
		detail += fmt.Sprintf(" (estimate was %s)", formatBytes(total))
	}
	if p.written > 0 {
		detail += fmt.Sprintf(", %s compressed", formatBytes(p.written))
	}
	p.draw(detail)
}

// progressWriter counts the bytes written through it on a progress line.
type progressWriter struct {
	w io.Writer
	p *progressLine
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.mu.Lock()
	pw.p.written += uint64(n)
	pw.p.mu.Unlock()
	return n, err
}

// clear blanks the line and leaves the cursor at its start, so that the
// next log line is not written after the progress text.
func (p *progressLine) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// draw writes "\rstep: detail, elapsed", padded with spaces over what
// the previous line left.
//
// Preconditions: p.mu is held.
func (p *progressLine) draw(detail string) {
	now := p.now()
	line := fmt.Sprintf("ksu: %s: %s, %.1fs", p.step, detail, now.Sub(p.start).Seconds())
	pad := max(p.width-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.width = len(line)
	p.drawn = now
}
