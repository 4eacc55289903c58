package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestWholeServices checks that a service counts as whole only when its
// cgroup holds nothing but selected processes.
func TestWholeServices(t *testing.T) {
	for _, tt := range []struct {
		name   string
		others []int // other processes in the service's cgroup
		want   []string
	}{
		{"only the selected process", nil, []string{"app.service"}},
		{"another process in the cgroup", []int{1 << 22}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := startChild(t, "sleep", "60")
			proc, cgroups := t.TempDir(), t.TempDir()
			writeTestFile(t, filepath.Join(proc, fmt.Sprint(pid), "cgroup"), "0::/system.slice/app.service\n")
			procs := fmt.Sprintln(pid)
			for _, o := range tt.others {
				procs += fmt.Sprintln(o)
			}
			writeTestFile(t, filepath.Join(cgroups, "system.slice/app.service/cgroup.procs"), procs)

			got := host{proc: proc, cgroupRoot: cgroups}.wholeServices([]int{pid})

			if !slices.Equal(got, tt.want) {
				t.Errorf("wholeServices(%d) = %v, want %v", pid, got, tt.want)
			}
		})
	}
}

func TestHoldArg(t *testing.T) {
	if got := holdArg(nil, newSwitchLog()); got != "" {
		t.Errorf("holdArg(nil) = %q, want empty", got)
	}
	if got, want := holdArg([]string{"a.service", "b.service"}, newSwitchLog()), "ksu.hold=a.service,b.service"; got != want {
		t.Errorf("holdArg(a, b) = %q, want %q", got, want)
	}
	long := strings.Repeat("x", 600) + ".service"
	if got, want := holdArg([]string{long, long}, newSwitchLog()), "ksu.hold="+long; got != want {
		t.Errorf("holdArg(two 608-byte names) = %d bytes, want only the first name", len(got))
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
