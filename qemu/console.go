package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

// Line is one line of the guest's serial console.
type Line struct {
	Text string
	// At is when the host read the line's end.
	At time.Time
	// Index counts the console's lines from 0.
	Index int
}

// Next returns the cursor just after l, to wait for what follows it.
func (l Line) Next() Cursor {
	return Cursor(l.Index + 1)
}

// Cursor is a position in the console output, counted in lines. A wait
// from a cursor matches only the lines at or after it.
type Cursor int

const (
	// maxConsoleLines bounds the lines kept in memory. When it is reached
	// the older half is dropped; console.log keeps everything.
	maxConsoleLines = 200_000
	// maxLineBytes splits a console line that never ends (a progress bar
	// redrawn with \r) into pieces, so that it cannot grow without bound.
	maxLineBytes = 64 << 10
	// tailLines is how many console lines an error quotes.
	tailLines = 20
)

var errConsoleClosed = errors.New("console closed")

// console collects the serial console output of one guest.
type console struct {
	start time.Time
	log   io.Writer // console.log; written only by the read loop

	mu      sync.Mutex
	lines   []Line
	first   int           // index of lines[0]
	changed chan struct{} // closed and replaced when a line arrives
	done    chan struct{} // closed at the end of the output
}

func newConsole(start time.Time, log io.Writer) *console {
	return &console{
		start:   start,
		log:     log,
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// readFrom reads console output until r ends, timestamps each line as it
// arrives and appends it to console.log as "SECONDS TEXT", where SECONDS
// counts from QEMU's start.
func (c *console) readFrom(r io.Reader) {
	defer close(c.done)
	br := bufio.NewReaderSize(r, maxLineBytes)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			c.add(string(bytes.TrimRight(chunk, "\r\n")), time.Now())
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (c *console) add(text string, at time.Time) {
	fmt.Fprintf(c.log, "%9.3f %s\n", at.Sub(c.start).Seconds(), text)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) >= maxConsoleLines {
		drop := len(c.lines) / 2
		c.lines = append([]Line(nil), c.lines[drop:]...)
		c.first += drop
	}
	c.lines = append(c.lines, Line{Text: text, At: at, Index: c.first + len(c.lines)})
	close(c.changed)
	c.changed = make(chan struct{})
}

// mark returns the cursor after the last line received.
func (c *console) mark() Cursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Cursor(c.first + len(c.lines))
}

// find returns the first line at or after from that matches re, and the
// channels that signal a new line or the end of the output.
func (c *console) find(from Cursor, re *regexp.Regexp) (line Line, found bool, changed, done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := max(int(from)-c.first, 0)
	for _, l := range c.lines[min(start, len(c.lines)):] {
		if re.MatchString(l.Text) {
			return l, true, nil, nil
		}
	}
	return Line{}, false, c.changed, c.done
}

// waitFrom waits for the first line at or after from that matches re. It
// fails with ctx's error, or errConsoleClosed once the output has ended
// without a match.
func (c *console) waitFrom(ctx context.Context, from Cursor, re *regexp.Regexp) (Line, error) {
	for {
		line, found, changed, done := c.find(from, re)
		if found {
			return line, nil
		}
		select {
		case <-changed:
		case <-done:
			if line, found, _, _ := c.find(from, re); found {
				return line, nil
			}
			return Line{}, errConsoleClosed
		case <-ctx.Done():
			return Line{}, ctx.Err()
		}
	}
}

// linesFrom returns a copy of the lines kept at or after from.
func (c *console) linesFrom(from Cursor) []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := min(max(int(from)-c.first, 0), len(c.lines))
	return append([]Line(nil), c.lines[start:]...)
}

// tail returns the text of the last n lines.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines[max(len(c.lines)-n, 0):] {
		out = append(out, l.Text)
	}
	return out
}

// Mark returns the cursor after the last console line received, so that a
// later WaitConsoleFrom matches only what the guest prints from now on.
func (g *Guest) Mark() Cursor {
	return g.console.mark()
}

// WaitConsole waits for the first console line since boot that matches re.
func (g *Guest) WaitConsole(ctx context.Context, re *regexp.Regexp) (Line, error) {
	return g.WaitConsoleFrom(ctx, 0, re)
}

// WaitConsoleFrom waits for the first console line at or after from that
// matches re. It fails when ctx is done or QEMU exits first. The error
// wraps ctx.Err() or ErrExited accordingly and quotes the last console
// lines.
func (g *Guest) WaitConsoleFrom(ctx context.Context, from Cursor, re *regexp.Regexp) (Line, error) {
	line, err := g.console.waitFrom(ctx, from, re)
	switch {
	case err == nil:
		return line, nil
	case errors.Is(err, errConsoleClosed):
		return Line{}, fmt.Errorf("wait for console line /%s/: %w%s", re, g.exitError(), g.consoleTail())
	default:
		return Line{}, fmt.Errorf("wait for console line /%s/: %w while qemu runs%s", re, err, g.consoleTail())
	}
}

// Console returns the console lines received at or after from. Only the
// most recent lines are kept in memory; console.log has all of them.
func (g *Guest) Console(from Cursor) []Line {
	return g.console.linesFrom(from)
}
