package phase

import (
	"strings"
	"testing"
	"time"
)

func TestTimelineRecordsInOrder(t *testing.T) {
	var tl Timeline
	tl.Begin(Check)
	tl.Begin(Load)
	last := tl.End()

	if len(tl.Spans) != 2 {
		t.Fatalf("len(Spans) = %d, want 2", len(tl.Spans))
	}
	if tl.Spans[0].Phase != Check || tl.Spans[1].Phase != Load {
		t.Errorf("Spans phases = %s, %s, want check, load", tl.Spans[0].Phase, tl.Spans[1].Phase)
	}
	if last != tl.Spans[1] {
		t.Errorf("End() = %+v, want the last span %+v", last, tl.Spans[1])
	}
	if got := tl.End(); got != (Span{}) {
		t.Errorf("End() with no running phase = %+v, want zero Span", got)
	}
	if s := tl.Summary(); !strings.HasPrefix(s, "check ") || !strings.Contains(s, ", load ") {
		t.Errorf("Summary() = %q, want \"check …, load …\"", s)
	}
}

func TestAllUnique(t *testing.T) {
	seen := map[Name]bool{}
	for _, p := range All {
		if seen[p] {
			t.Errorf("phase %q listed twice in All", p)
		}
		seen[p] = true
	}
}

func TestSpanMarker(t *testing.T) {
	s := Span{Phase: Load, Duration: 1500 * time.Millisecond}
	if got, want := s.Marker(), "KSU-PHASE load done ms=1500"; got != want {
		t.Errorf("Span.Marker() = %q, want %q", got, want)
	}
}
