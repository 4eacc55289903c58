package harness

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	line := "42 (a) b (c)) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 5 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 3 0 0 0"
	want := map[string]string{
		"pgrp": "42", "session": "42", "tty_nr": "0", "priority": "20", "nice": "5",
		"exit_signal": "17", "rt_priority": "0", "policy": "3",
	}
	if diff := cmp.Diff(want, parseStat(line)); diff != "" {
		t.Errorf("parseStat(%q) mismatch (-want +got):\n%s", line, diff)
	}
}

func TestParseStatusState(t *testing.T) {
	for _, tt := range []struct {
		state string
		want  string
	}{
		{"S (sleeping)", "live"},
		{"R (running)", "live"},
		{"t (tracing stop)", "live"},
		{"Z (zombie)", "zombie"},
	} {
		got := parseStatus("State:\t" + tt.state + "\nSigQ:\t1/100\nUid:\t0\t0\t0\t0\n")
		if got["State"] != tt.want {
			t.Errorf("parseStatus(State %q)[State] = %q, want %q", tt.state, got["State"], tt.want)
		}
		if _, ok := got["SigQ"]; ok {
			t.Errorf("parseStatus(State %q) kept SigQ, want it dropped", tt.state)
		}
		if got["Uid"] != "0 0 0 0" {
			t.Errorf("parseStatus(State %q)[Uid] = %q, want %q", tt.state, got["Uid"], "0 0 0 0")
		}
	}
}

// process returns a capture of one process for the Compare tests.
func process(pid int, ppid string, fds map[int]string, maps ...string) Process {
	return Process{PID: pid, Comm: "w", Status: map[string]string{"PPid": ppid}, FDs: fds, Maps: maps}
}

func TestCompare(t *testing.T) {
	const heap = "01000000-01021000 rw-p 00000000 00:00 0 [heap]"
	for _, tt := range []struct {
		name          string
		before, after Tree
		wantDiffs     []string // a substring of each difference, in order
	}{
		{
			name:   "root reparented",
			before: Tree{Root: 10, Processes: []Process{process(10, "5", nil)}},
			after:  Tree{Root: 10, Processes: []Process{process(10, "1", nil)}},
		},
		{
			name:      "child reparented",
			before:    Tree{Root: 10, Processes: []Process{process(10, "5", nil), process(11, "10", nil)}},
			after:     Tree{Root: 10, Processes: []Process{process(10, "1", nil), process(11, "1", nil)}},
			wantDiffs: []string{"pid 11 (w) differs"},
		},
		{
			name: "pipe renumbered, sharing kept",
			before: Tree{Root: 10, Processes: []Process{
				process(10, "5", map[int]string{3: "pipe:[100]", 4: "pipe:[101]"}),
				process(11, "10", map[int]string{3: "pipe:[100]"}),
			}},
			after: Tree{Root: 10, Processes: []Process{
				process(10, "1", map[int]string{3: "pipe:[900]", 4: "pipe:[901]"}),
				process(11, "10", map[int]string{3: "pipe:[900]"}),
			}},
		},
		{
			name: "pipe sharing lost",
			before: Tree{Root: 10, Processes: []Process{
				process(10, "5", map[int]string{3: "pipe:[100]"}),
				process(11, "10", map[int]string{3: "pipe:[100]"}),
			}},
			after: Tree{Root: 10, Processes: []Process{
				process(10, "1", map[int]string{3: "pipe:[900]"}),
				process(11, "10", map[int]string{3: "pipe:[901]"}),
			}},
			wantDiffs: []string{"pid 11 (w) differs"},
		},
		{
			name:   "memfd inode and vvar",
			before: Tree{Root: 10, Processes: []Process{process(10, "5", nil, heap, "7f00-7f10 rw-s 00000000 00:01 77 /memfd:m (deleted)", "7f20-7f24 r--p 00000000 00:00 0 [vvar]")}},
			after:  Tree{Root: 10, Processes: []Process{process(10, "1", nil, heap, "7f00-7f10 rw-s 00000000 00:01 99 /memfd:m (deleted)", "7f20-7f21 r--p 00000000 00:00 0 [vvar]", "7f21-7f24 r--p 00000000 00:00 0 [vvar_vclock]")}},
		},
		{
			name:      "mapping moved",
			before:    Tree{Root: 10, Processes: []Process{process(10, "5", nil, heap, "7f00-7f10 r--p 00000000 fe:00 12 /lib/x")}},
			after:     Tree{Root: 10, Processes: []Process{process(10, "1", nil, heap, "7e00-7e10 r--p 00000000 fe:00 12 /lib/x")}},
			wantDiffs: []string{"pid 10 (w) differs"},
		},
		{
			name:      "file inode changed",
			before:    Tree{Root: 10, Processes: []Process{process(10, "5", nil, "7f00-7f10 r--p 00000000 fe:00 12 /lib/x")}},
			after:     Tree{Root: 10, Processes: []Process{process(10, "1", nil, "7f00-7f10 r--p 00000000 fe:00 13 /lib/x")}},
			wantDiffs: []string{"pid 10 (w) differs"},
		},
		{
			name:      "process missing and new",
			before:    Tree{Root: 10, Processes: []Process{process(10, "5", nil), process(11, "10", nil)}},
			after:     Tree{Root: 10, Processes: []Process{process(10, "1", nil), process(12, "10", nil)}},
			wantDiffs: []string{"pid 11 (w) missing", "pid 12 (w) is new"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			diffs := Compare(tt.before, tt.after)
			if len(diffs) != len(tt.wantDiffs) {
				t.Fatalf("Compare() = %d differences %q, want %d", len(diffs), diffs, len(tt.wantDiffs))
			}
			for i, want := range tt.wantDiffs {
				if !strings.Contains(diffs[i], want) {
					t.Errorf("Compare() difference %d = %q, want it to contain %q", i, diffs[i], want)
				}
			}
		})
	}
}

func TestCaptureSelf(t *testing.T) {
	pid := os.Getpid()
	tree, err := Capture("/proc", pid)
	if err != nil {
		t.Fatalf("Capture(/proc, %d) = %v, want nil error", pid, err)
	}
	if len(tree.Processes) == 0 || tree.Processes[0].PID != pid {
		t.Fatalf("Capture(/proc, %d) processes = %v, want this process first", pid, tree.PIDs())
	}
	self := tree.Processes[0]
	wd, _ := os.Getwd()
	if self.Cwd != wd {
		t.Errorf("Capture(/proc, %d) cwd = %q, want %q", pid, self.Cwd, wd)
	}
	if len(self.Threads) == 0 || self.Threads[0].TID != pid {
		t.Errorf("Capture(/proc, %d) first thread = %v, want tid %d", pid, self.Threads, pid)
	}
	if self.Status["State"] != "live" {
		t.Errorf("Capture(/proc, %d) state = %q, want live", pid, self.Status["State"])
	}
	if diffs := Compare(tree, tree); len(diffs) != 0 {
		t.Errorf("Compare(capture, same capture) = %q, want no differences", diffs)
	}
}

func TestNormalizeMapsMerge(t *testing.T) {
	lines := []string{
		"1000-2000 r--p 00000000 fe:00 12 /lib/x",
		"2000-3000 r--p 00001000 fe:00 12 /lib/x",
		"3000-4000 r--p 00005000 fe:00 12 /lib/x",
		"4000-5000 rw-p 00000000 00:00 0",
		"5000-6000 rw-p 00000000 00:00 0",
	}
	want := []string{
		"1000-3000 r--p 00000000 fe:00 12 /lib/x",
		"3000-4000 r--p 00005000 fe:00 12 /lib/x",
		"4000-6000 rw-p 00000000 00:00 0",
	}
	if diff := cmp.Diff(want, normalizeMaps(lines)); diff != "" {
		t.Errorf("normalizeMaps() mismatch (-want +got):\n%s", diff)
	}
}

func TestMaskTimerSignals(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"0000000000002000", "0000000000000000"}, // SIGALRM
		{"0000000000002002", "0000000000000002"}, // SIGALRM and SIGINT
		{"0000000200000000", "0000000000000000"}, // SIGRTMIN
		{"0000000000000100", "0000000000000100"}, // SIGUSR1 stays
		{"unreadable", "unreadable"},
	} {
		if got := maskTimerSignals(tt.in); got != tt.want {
			t.Errorf("maskTimerSignals(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCompareNewThreads(t *testing.T) {
	proc := func(tids ...int) Process {
		p := Process{PID: 10, Comm: "go", Status: map[string]string{"Threads": strconv.Itoa(len(tids))}}
		for _, tid := range tids {
			p.Threads = append(p.Threads, Thread{TID: tid, Comm: "go"})
		}
		return p
	}
	before := Tree{Root: 10, Processes: []Process{proc(10, 11)}}

	if d := Compare(before, Tree{Root: 10, Processes: []Process{proc(10, 11, 12)}}); len(d) != 0 {
		t.Errorf("Compare(one thread more after) = %q, want no difference", d)
	}
	if d := Compare(before, Tree{Root: 10, Processes: []Process{proc(10)}}); len(d) == 0 {
		t.Errorf("Compare(thread 11 missing after) = no difference, want one")
	}
}

func TestNormalizeMapsGrowingHeap(t *testing.T) {
	before := []string{
		"1b533c000000-1b5340800000 rw-p 00000000 00:00 0",
		"1b5340800000-1b5344000000 ---p 00000000 00:00 0",
		"7ffb4ff90000-7ffb52200000 rw-p 00000000 00:00 0",
	}
	after := []string{
		"1b533c000000-1b5340c00000 rw-p 00000000 00:00 0",
		"1b5340c00000-1b5344000000 ---p 00000000 00:00 0",
		"7ffb4ff90000-7ffb52200000 rw-p 00000000 00:00 0",
	}
	if diff := cmp.Diff(normalizeMaps(before), normalizeMaps(after)); diff != "" {
		t.Errorf("normalizeMaps of a heap that grew differs (-before +after):\n%s", diff)
	}
	moved := []string{
		"1b533c000000-1b5340c00000 rw-p 00000000 00:00 0",
		"1b5340c00000-1b5345000000 ---p 00000000 00:00 0",
		"7ffb4ff90000-7ffb52200000 rw-p 00000000 00:00 0",
	}
	if cmp.Equal(normalizeMaps(before), normalizeMaps(moved)) {
		t.Errorf("normalizeMaps hides a reservation whose end moved")
	}
}

func TestCompareTransientMask(t *testing.T) {
	proc := func(blk string) Process {
		return Process{PID: 10, Comm: "timers", Threads: []Thread{
			{TID: 10, Comm: "timers", SigBlk: "0000000000002000"},
			{TID: 11, Comm: "timers", SigBlk: blk},
		}}
	}
	tree := func(blk string) Tree { return Tree{Root: 10, Processes: []Process{proc(blk)}} }

	if d := Compare(tree(allBlocked), tree("0000003c02002800")); len(d) != 0 {
		t.Errorf("Compare(all blocked before) = %q, want no difference", d)
	}
	if d := Compare(tree("0000003c02002800"), tree(allBlocked)); len(d) == 0 {
		t.Errorf("Compare(all blocked only after) = no difference, want one")
	}
}

func TestCompareZombiePending(t *testing.T) {
	zombie := func(pnd string) Tree {
		return Tree{Root: 10, Processes: []Process{{
			PID: 10, Comm: "child",
			Status:  map[string]string{"State": "zombie", "SigPnd": pnd},
			Threads: []Thread{{TID: 10, Comm: "child", SigPnd: pnd}},
		}}}
	}
	if d := Compare(zombie("0000000000004000"), zombie("0000000000000000")); len(d) != 0 {
		t.Errorf("Compare(zombie with SIGTERM pending before only) = %q, want no difference", d)
	}
}
