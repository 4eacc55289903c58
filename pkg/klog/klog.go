// Package klog is the logging interface of ksu's libraries and its
// implementations: the kernel log with a console copy (for ksu-init, which
// runs as PID 1 with nothing else to read its output), standard error (for
// commands), and klogtest for tests.
//
// Libraries take a Logger and never decide that an error is fatal; only the
// commands under cmd/ do.
package klog

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Logger receives one message per call. A message needs no trailing newline.
type Logger interface {
	Printf(format string, args ...any)
}

// Discard is a Logger that drops every message.
var Discard Logger = discard{}

type discard struct{}

func (discard) Printf(string, ...any) {}

// Writer is a Logger that writes each message as one line, prefixed with
// "ident: ", to an io.Writer. Writes are serialized, so concurrent callers
// never interleave within a line.
type Writer struct {
	ident string
	mu    sync.Mutex
	w     io.Writer
}

// NewWriter returns a Logger that writes "ident: message" lines to w.
func NewWriter(ident string, w io.Writer) *Writer {
	return &Writer{ident: ident, w: w}
}

// Stderr returns a Logger that writes "ident: message" lines to standard
// error.
func Stderr(ident string) *Writer {
	return NewWriter(ident, os.Stderr)
}

// Printf writes one line. Errors from the underlying writer are dropped,
// because a logger has nowhere else to report them.
func (l *Writer) Printf(format string, args ...any) {
	line := formatLine(l.ident, format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

// formatLine returns "ident: message\n", with any trailing newlines of the
// message dropped so that every message is exactly one line.
func formatLine(ident, format string, args ...any) string {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	if ident == "" {
		return msg + "\n"
	}
	return ident + ": " + msg + "\n"
}
