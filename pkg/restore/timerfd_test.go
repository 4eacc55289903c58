package restore

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// TestTimerFDAbsoluteDeadline arms absolute timerfds as if the dump had
// happened three seconds ago with five seconds left: a wall-clock timer
// keeps its deadline (two seconds left, or the time to its saved
// deadline), a monotonic one does not count the frozen time (five seconds
// left).
func TestTimerFDAbsoluteDeadline(t *testing.T) {
	dumpedAt := time.Now().Add(-3 * time.Second)
	for _, tt := range []struct {
		name     string
		clock    int32
		deadline time.Time
		want     time.Duration
	}{
		{"realtime keeps its deadline", unix.CLOCK_REALTIME, time.Time{}, 2 * time.Second},
		{"realtime saved deadline wins", unix.CLOCK_REALTIME, time.Now().Add(4 * time.Second), 4 * time.Second},
		{"monotonic skips the frozen time", unix.CLOCK_MONOTONIC, time.Time{}, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tfd := &snapshot.TimerFD{Clock: tt.clock, Flags: unix.TFD_TIMER_ABSTIME, Value: 5 * time.Second, Deadline: tt.deadline}
			f, err := newTimerFD(tfd, dumpedAt)
			if err != nil {
				t.Fatalf("newTimerFD(%+v) = %v", tfd, err)
			}
			defer f.Close()

			var cur unix.ItimerSpec
			if err := unix.TimerfdGettime(f.fd, &cur); err != nil {
				t.Fatal(err)
			}
			left := time.Duration(cur.Value.Nano())
			if left > tt.want || left < tt.want-time.Second {
				t.Errorf("time left on the timerfd = %v, want about %v", left, tt.want)
			}
		})
	}
}
