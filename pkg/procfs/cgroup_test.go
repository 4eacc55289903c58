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

func TestServiceOf(t *testing.T) {
	for _, tt := range []struct {
		path, name, cgroup string
		ok                 bool
	}{
		{"/system.slice/r6380.service", "r6380.service", "/system.slice/r6380.service", true},
		{"/system.slice/app.service/worker", "app.service", "/system.slice/app.service", true},
		{"/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", "/system.slice/system-getty.slice/getty@tty1.service", true},
		{`/system.slice/systemd-fsck@dev-disk-by\x2dlabel-root.service`, `systemd-fsck@dev-disk-by\x2dlabel-root.service`, `/system.slice/systemd-fsck@dev-disk-by\x2dlabel-root.service`, true},
		{"/foo.service", "foo.service", "/foo.service", true},
		// The system manager's unit is user@1000.service, not the user
		// manager's app.service inside it.
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app.service", "user@1000.service", "/user.slice/user-1000.slice/user@1000.service", true},
		{"/user.slice/user-1000.slice/session-3.scope", "", "", false},
		{"/system.slice/run-r1.scope", "", "", false},
		{"/init.scope", "", "", false},
		{"/", "", "", false},
		{"", "", "", false},
		{"/ksu-test/a.service", "", "", false},
		{"/system.slice", "", "", false},
		{"/system.slice/bad name.service", "", "", false},
		{"/system.slice/" + strings.Repeat("a", 250) + ".service", "", "", false},
	} {
		name, cgroup, ok := ServiceOf(tt.path)
		if name != tt.name || cgroup != tt.cgroup || ok != tt.ok {
			t.Errorf("ServiceOf(%q) = %q, %q, %v, want %q, %q, %v", tt.path, name, cgroup, ok, tt.name, tt.cgroup, tt.ok)
		}
	}
}

func TestUnifiedPath(t *testing.T) {
	for _, tt := range []struct {
		content, want string
		ok            bool
	}{
		{"0::/system.slice/r6380.service\n", "/system.slice/r6380.service", true},
		{"1:name=systemd:/x\n0::/system.slice/a.service\n", "/system.slice/a.service", true},
		{"0::/\n", "/", true},
		{"1:name=systemd:/x\n", "", false},
		{"", "", false},
	} {
		cgroups, err := ParseCgroup(strings.NewReader(tt.content))
		if err != nil {
			t.Fatalf("ParseCgroup(%q) = %v", tt.content, err)
		}
		got, ok := UnifiedPath(cgroups)
		if got != tt.want || ok != tt.ok {
			t.Errorf("UnifiedPath(%q) = %q, %v, want %q, %v", tt.content, got, ok, tt.want, tt.ok)
		}
	}
}
