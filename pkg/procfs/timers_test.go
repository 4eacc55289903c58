package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadTimers(t *testing.T) {
	got, err := ReadTimers(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	want := []Timer{
		{ID: 2, Notify: "none", NotifyPid: testPid, ClockID: 7},
		{ID: 1, Signal: 14, Notify: "signal", ThreadID: true, NotifyPid: testPid},
		{ID: 0, Signal: 34, Value: 0xdeadbeef, Notify: "signal", NotifyPid: testPid, ClockID: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadTimers(%d) mismatch (-want +got):\n%s", testPid, diff)
	}
}

func TestParseTimersInvalid(t *testing.T) {
	for _, data := range []string{
		"signal: 14/0\n",
		"ID: x\n",
		"ID: 1\nsignal: 14\n",
		"ID: 1\nnotify: signal/pgrp.1\n",
		"ID: 1\nnotify: signal\n",
		"ID 1\n",
	} {
		if got, err := ParseTimers(strings.NewReader(data)); err == nil {
			t.Errorf("ParseTimers(%q) = %+v, want an error", data, got)
		}
	}
}

func FuzzParseTimers(f *testing.F) {
	f.Add("ID: 0\nsignal: 34/00000000deadbeef\nnotify: signal/pid.15661\nClockID: 1\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseTimers(strings.NewReader(data))
	})
}
