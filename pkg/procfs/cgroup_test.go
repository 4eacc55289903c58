package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadCgroup(t *testing.T) {
	got, err := ReadCgroup(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	const service = "/system.slice/redis-server.service"
	want := []Cgroup{
		{Hierarchy: 9, Controllers: []string{"name=systemd"}, Path: service},
		{Hierarchy: 8, Controllers: []string{"pids"}, Path: service},
		{Hierarchy: 6, Controllers: []string{"freezer"}, Path: "/"},
		{Hierarchy: 4, Controllers: []string{"memory"}, Path: service},
		{Hierarchy: 2, Controllers: []string{"cpu", "cpuacct"}, Path: service},
		{Hierarchy: 0, Path: service},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadCgroup(%d) mismatch (-want +got):\n%s", testPid, diff)
	}
}

func TestParseCgroup(t *testing.T) {
	data := "0::/user.slice/user-1000.slice/session-3.scope:odd\n"
	got, err := ParseCgroup(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Cgroup{{Path: "/user.slice/user-1000.slice/session-3.scope:odd"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseCgroup(%q) mismatch (-want +got):\n%s", data, diff)
	}
	for _, bad := range []string{"0:/\n", "x::/\n"} {
		if got, err := ParseCgroup(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseCgroup(%q) = %+v, want an error", bad, got)
		}
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add("9:name=systemd:/system.slice/redis-server.service\n0::/\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseCgroup(strings.NewReader(data))
	})
}
