package procfs

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDescendantsOfSelf(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("skipping: cannot start a child: %v", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	pids, err := Descendants("/proc", []int{os.Getpid()}, 1<<16)
	if err != nil {
		t.Fatalf("Descendants(/proc, self) = %v, want nil error", err)
	}
	if len(pids) == 0 || pids[0] != os.Getpid() {
		t.Errorf("Descendants(/proc, self) = %v, want self first", pids)
	}
	if !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("Descendants(/proc, self) = %v, want it to contain child %d", pids, cmd.Process.Pid)
	}
	if got, _ := Descendants("/proc", []int{os.Getpid()}, 1); len(got) != 1 {
		t.Errorf("Descendants(max 1) = %v, want one pid", got)
	}
}

func TestParseChildren(t *testing.T) {
	for _, tt := range []struct {
		data    string
		want    []int
		wantErr bool
	}{
		{"", nil, false},
		{"12 345 6789 ", []int{12, 345, 6789}, false},
		{"12 -5 ", nil, true},
		{"0 ", nil, true},
		{"+5 ", nil, true},
		{"5x ", nil, true},
		{"99999999999999999999 ", nil, true},
	} {
		got, err := parseChildren(tt.data)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseChildren(%q) = %v, %v, want error %t", tt.data, got, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseChildren(%q) mismatch (-want +got):\n%s", tt.data, diff)
		}
	}
}

// FuzzParseChildren checks that every PID parseChildren accepts is
// positive and prints back as the field it came from.
func FuzzParseChildren(f *testing.F) {
	f.Add("12 345 6789 ")
	f.Add("1 -2 +3 0x4 ")
	f.Fuzz(func(t *testing.T, data string) {
		kids, err := parseChildren(data)
		if err != nil {
			return
		}
		fields := strings.Fields(data)
		if len(kids) != len(fields) {
			t.Fatalf("parseChildren(%q) = %d pids from %d fields", data, len(kids), len(fields))
		}
		for i, kid := range kids {
			if kid <= 0 {
				t.Fatalf("parseChildren(%q) accepted pid %d", data, kid)
			}
			if s := strconv.Itoa(kid); s != strings.TrimLeft(fields[i], "0") {
				t.Fatalf("parseChildren(%q) read field %q as %d", data, fields[i], kid)
			}
		}
	})
}
