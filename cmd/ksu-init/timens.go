package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/timens"
)

// clockOffsets are the offsets of the restored processes' time namespace
// and how they were chosen.
type clockOffsets struct {
	// Pause is the CLOCK_REALTIME difference between the snapshot's
	// stamp and the moment the offsets were computed, 0 if negative.
	Pause     time.Duration `json:"pause_ns"`
	Monotonic time.Duration `json:"monotonic_offset_ns"`
	Boottime  time.Duration `json:"boottime_offset_ns"`
}

func (c clockOffsets) String() string {
	return fmt.Sprintf("monotonic %+v, boottime %+v (pause %v since the snapshot)",
		c.Monotonic, c.Boottime, c.Pause.Round(time.Millisecond))
}

// computeOffsets returns the offsets that make CLOCK_MONOTONIC and
// CLOCK_BOOTTIME read, at the moment whose clocks are mono, boot and now,
// the values they had at the snapshot plus the real time that passed.
//
// The pause is measured with CLOCK_REALTIME on both kernels. The new
// kernel sets that clock from the RTC, which on x86 counts whole seconds,
// so the pause, and the jump the processes see, can be off by up to a
// second until NTP corrects the clock. A negative pause (a clock set
// back) counts as 0, so the clocks continue exactly where they stopped.
func computeOffsets(m snapshot.Meta, mono, boot time.Duration, now time.Time) clockOffsets {
	pause := max(now.Sub(m.Time), 0)
	return clockOffsets{
		Pause:     pause,
		Monotonic: m.Monotonic + pause - mono,
		Boottime:  m.Boottime + pause - boot,
	}
}

// runWithOffsets unshares a time namespace whose clocks continue those
// of the snapshot, with proc the proc mount to set its offsets through,
// and runs the restorer's second step in it with the offsets as its
// argument. Only that process and what it forks enter the namespace, so
// the real init keeps the kernel's clocks. It returns the second step's
// wait status.
//
// Preconditions: the calling goroutine is locked to the main thread.
func runWithOffsets(proc string, m snapshot.Meta, now time.Time) (clockOffsets, unix.WaitStatus, error) {
	var mono, boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return clockOffsets{}, 0, fmt.Errorf("read monotonic clock: %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		return clockOffsets{}, 0, fmt.Errorf("read boot-time clock: %w", err)
	}
	c := computeOffsets(m, time.Duration(mono.Nano()), time.Duration(boot.Nano()), now)
	arg, err := json.Marshal(c)
	if err != nil {
		return c, 0, fmt.Errorf("encode clock offsets: %w", err)
	}
	argv := []string{os.Args[0], restorerArg, string(arg)}
	ws, err := timens.Run(proc, timens.Offsets{Monotonic: c.Monotonic, Boottime: c.Boottime}, argv, os.Environ())
	return c, ws, err
}
