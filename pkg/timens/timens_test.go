package timens

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseOffsets(t *testing.T) {
	for _, tt := range []struct {
		name      string
		text      string
		want      Offsets
		wantError bool
	}{
		{
			name: "as the kernel prints them",
			text: "monotonic       -120 500000000\nboottime          3600         0\n",
			want: Offsets{Monotonic: -120*time.Second + 500*time.Millisecond, Boottime: time.Hour},
		},
		{name: "empty", text: ""},
		{name: "round trip of Format", text: Offsets{Monotonic: -1500 * time.Millisecond, Boottime: 7}.Format(),
			want: Offsets{Monotonic: -1500 * time.Millisecond, Boottime: 7}},
		{name: "unknown clock", text: "realtime 1 0\n", wantError: true},
		{name: "missing field", text: "monotonic 1\n", wantError: true},
		{name: "bad number", text: "boottime 1 x\n", wantError: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOffsets(tt.text)
			if (err != nil) != tt.wantError {
				t.Fatalf("ParseOffsets(%q) error = %v, want error %v", tt.text, err, tt.wantError)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseOffsets(%q) mismatch (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

// fakeProcess writes a /proc/PID directory under procDir with the given
// timens_offsets text and ns/time and ns/time_for_children links.
func fakeProcess(t *testing.T, procDir string, pid int, offsets, ns, forChildren string) {
	t.Helper()
	dir := filepath.Join(procDir, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "timens_offsets"), []byte(offsets), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ns, filepath.Join(dir, "ns", "time")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(forChildren, filepath.Join(dir, "ns", "time_for_children")); err != nil {
		t.Fatal(err)
	}
}

func TestLatest(t *testing.T) {
	proc := t.TempDir()
	fakeProcess(t, proc, 10, "monotonic 100 0\nboottime -5 0\n", "time:[1]", "time:[1]")
	fakeProcess(t, proc, 11, "monotonic 20 0\nboottime 7 0\n", "time:[2]", "time:[2]")
	fakeProcess(t, proc, 12, "monotonic -50 0\nboottime -60 0\n", "time:[3]", "time:[3]")
	fakeProcess(t, proc, 13, "monotonic 0 0\nboottime 0 0\n", "time:[1]", "time:[4]")
	if err := os.MkdirAll(filepath.Join(proc, "14"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name      string
		pids      []int
		want      Offsets
		wantError bool
	}{
		{name: "largest of each clock", pids: []int{10, 11}, want: Offsets{Monotonic: 100 * time.Second, Boottime: 7 * time.Second}},
		{name: "negative offsets only", pids: []int{12}, want: Offsets{Monotonic: -50 * time.Second, Boottime: -60 * time.Second}},
		{name: "no process", pids: nil},
		{name: "kernel without time namespaces", pids: []int{14}},
		{name: "namespace for children differs", pids: []int{10, 13}, wantError: true},
		{name: "no such process", pids: []int{99}, wantError: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Latest(proc, tt.pids)
			if (err != nil) != tt.wantError {
				t.Fatalf("Latest(%v) error = %v, want error %v", tt.pids, err, tt.wantError)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Latest(%v) mismatch (-want +got):\n%s", tt.pids, diff)
			}
		})
	}
}

func TestReadOffsetsSelf(t *testing.T) {
	got, err := ReadOffsets("/proc", os.Getpid())
	if err != nil {
		t.Fatalf("ReadOffsets(/proc, self) = %v, want nil error", err)
	}
	t.Logf("offsets of this test's time namespace: %+v", got)
}
