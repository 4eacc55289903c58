package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ksu-project/ksu/pkg/dump"
)

// tracer writes the --verbose trace: one line per step, with the time
// since the command started.
type tracer struct {
	w     io.Writer
	start time.Time
}

// trace is the trace of the running command, nil without --verbose.
var trace *tracer

// enableTrace sends the trace to stderr when on is true (--verbose).
func enableTrace(on bool) {
	if on {
		trace = &tracer{w: os.Stderr, start: time.Now()}
	}
}

// Printf writes one trace line; it does nothing on a nil tracer.
func (t *tracer) Printf(format string, args ...any) {
	if t == nil {
		return
	}
	elapsed := time.Since(t.start).Seconds()
	fmt.Fprintf(t.w, "ksu: [%8.3fs] %s\n", elapsed, fmt.Sprintf(format, args...))
}

// traceDump traces what a dump froze and wrote.
func traceDump(stats dump.Stats) {
	trace.Printf("freeze: %s, %s frozen in %s", plural(stats.Processes, "process", "processes"),
		plural(stats.Threads, "thread", "threads"), stats.Freeze.Round(time.Millisecond))
	trace.Printf("dump: %s of memory written in %s", formatBytes(stats.Pages),
		(stats.Total - stats.Freeze).Round(time.Millisecond))
}
