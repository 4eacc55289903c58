package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadStat(t *testing.T) {
	got, err := ReadStat(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{
		Pid: testPid, Comm: "capture", State: 'R', PPid: 15656, Pgrp: 15656, Session: 2989,
		Tpgid: -1, Flags: 4194560, NumThreads: 5, StartTime: 119744, VSize: 1561866240,
		StartCode: 4194304, EndCode: 5270880, StartStack: 140726619588560, ExitSignal: 17,
		StartData: 6656000, EndData: 6711424, StartBrk: 318447616,
		ArgStart: 140726619589304, ArgEnd: 140726619589331, EnvStart: 140726619589331, EnvEnd: 140726619590627,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadStat(%d) mismatch (-want +got):\n%s", testPid, diff)
	}
}

func TestParseStatComm(t *testing.T) {
	// A real stat line of a thread whose name contains spaces and
	// parentheses, with the tail fields of Linux 6.1.
	const tail = " S 1 1234 1234 34817 1234 4194560 190 0 0 0 0 0 0 0 20 0 1 0 5000 10000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
	for _, tt := range []struct{ line, comm string }{
		{"1234 (my (odd) name)" + tail, "my (odd) name"},
		{"1234 ( )" + tail, " "},
		{"1234 ())" + tail, ")"},
	} {
		got, err := ParseStat(tt.line)
		if err != nil {
			t.Fatalf("ParseStat(%q) = %v, want nil error", tt.line, err)
		}
		if got.Comm != tt.comm || got.State != 'S' || got.TTY != 34817 || got.ExitSignal != 17 {
			t.Errorf("ParseStat(%q) = comm %q state %c tty %d exit signal %d, want %q S 34817 17", tt.line, got.Comm, got.State, got.TTY, got.ExitSignal, tt.comm)
		}
	}
}

func TestParseStatInvalid(t *testing.T) {
	for _, line := range []string{
		"",
		"12 capture R 1",
		"12 (capture) R 1 2 3",
		"x (capture) R" + strings.Repeat(" 0", 49),
		"12 (capture) RR" + strings.Repeat(" 0", 49),
		"12 (capture) R" + strings.Repeat(" -1", 49),
	} {
		if got, err := ParseStat(line); err == nil {
			t.Errorf("ParseStat(%q) = %+v, want an error", line, got)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("15661 (capture) R 15656 15656 2989 0 -1 4194560 828 1274 0 0 0 0 1 0 20 0 5 0 119744 1561866240 1159 18446744073709551615 4194304 5270880 140726619588560 0 0 0 0 0 2143420159 0 0 0 17 0 0 0 0 0 0 6656000 6711424 318447616 140726619589304 140726619589331 140726619589331 140726619590627 0\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseStat(data)
	})
}
