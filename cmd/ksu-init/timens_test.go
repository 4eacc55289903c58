package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/timens"
)

func TestComputeOffsets(t *testing.T) {
	dumped := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	meta := snapshot.Meta{Monotonic: 100 * time.Second, Boottime: 120 * time.Second, Time: dumped}
	for _, tt := range []struct {
		name       string
		mono, boot time.Duration
		now        time.Time
		want       clockOffsets
	}{
		{"pause of 5s", 2 * time.Second, 3 * time.Second, dumped.Add(5 * time.Second),
			clockOffsets{Pause: 5 * time.Second, Monotonic: 103 * time.Second, Boottime: 122 * time.Second}},
		{"clock set back", 2 * time.Second, 3 * time.Second, dumped.Add(-time.Hour),
			clockOffsets{Monotonic: 98 * time.Second, Boottime: 117 * time.Second}},
		{"new kernel up longer", 200 * time.Second, 300 * time.Second, dumped,
			clockOffsets{Monotonic: -100 * time.Second, Boottime: -180 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := computeOffsets(meta, tt.mono, tt.boot, tt.now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("computeOffsets(%v, %v, %v) mismatch (-want +got):\n%s", tt.mono, tt.boot, tt.now, diff)
			}
		})
	}
}

func TestFormatOffsets(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   clockOffsets
		want string
	}{
		{"positive", clockOffsets{Monotonic: 1500 * time.Millisecond, Boottime: 2 * time.Second},
			"monotonic 1 500000000\nboottime 2 0\n"},
		{"negative fraction", clockOffsets{Monotonic: -1500 * time.Millisecond, Boottime: -time.Nanosecond},
			"monotonic -2 500000000\nboottime -1 999999999\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := timens.Offsets{Monotonic: tt.in.Monotonic, Boottime: tt.in.Boottime}
			if got := o.Format(); got != tt.want {
				t.Errorf("Offsets(%+v).Format() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
