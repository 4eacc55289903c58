package klogtest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoggerRecordsLines(t *testing.T) {
	l := New(t)
	l.Printf("a %d", 1)
	l.Printf("b\n")
	if diff := cmp.Diff([]string{"a 1", "b"}, l.Lines()); diff != "" {
		t.Errorf("Lines() mismatch (-want +got):\n%s", diff)
	}
}
