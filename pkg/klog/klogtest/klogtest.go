// Package klogtest provides a klog.Logger that sends messages to a test's
// log, so library output appears next to the test that caused it and only
// when the test fails or runs with -v.
package klogtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Logger sends messages to t.Logf and records them for assertions.
type Logger struct {
	tb testing.TB

	mu    sync.Mutex
	lines []string
}

// New returns a Logger that logs to tb.
func New(tb testing.TB) *Logger {
	return &Logger{tb: tb}
}

// Printf logs the message with tb.Logf and records it.
func (l *Logger) Printf(format string, args ...any) {
	l.tb.Helper()
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, msg)
	l.mu.Unlock()
	l.tb.Logf("%s", msg)
}

// Lines returns a copy of the messages logged so far.
func (l *Logger) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
