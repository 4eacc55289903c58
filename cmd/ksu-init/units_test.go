package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/pkg/klog"
)

func TestServiceOfCgroup(t *testing.T) {
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
		name, cgroup, ok := serviceOfCgroup(tt.path)
		if name != tt.name || cgroup != tt.cgroup || ok != tt.ok {
			t.Errorf("serviceOfCgroup(%q) = %q, %q, %v, want %q, %q, %v", tt.path, name, cgroup, ok, tt.name, tt.cgroup, tt.ok)
		}
	}
}

func TestParseCgroupFile(t *testing.T) {
	for _, tt := range []struct {
		content, want string
		wantErr       bool
	}{
		{"0::/system.slice/r6380.service\n", "/system.slice/r6380.service", false},
		{"1:name=systemd:/x\n0::/system.slice/a.service\n", "/system.slice/a.service", false},
		{"0::/\n", "/", false},
		{"1:name=systemd:/x\n", "", true},
		{"", "", true},
	} {
		got, err := parseCgroupFile(tt.content)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseCgroupFile(%q) = %q, %v, want %q, error %v", tt.content, got, err, tt.want, tt.wantErr)
		}
	}
}

// writeFiles creates each file of files, relative to root, with its
// content.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHoldUnits(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"proc/461/cgroup": "0::/system.slice/r6380.service\n",
		"proc/462/cgroup": "0::/system.slice/r6380.service/child\n",
		"proc/470/cgroup": "0::/system.slice/run-u7.service\n", // transient
		"proc/480/cgroup": "0::/user.slice/user-0.slice/session-1.scope\n",
		"proc/490/cgroup": "0::/system.slice/system-worker.slice/worker@2.service\n",
		"proc/500/cgroup": "0::/system.slice/legacy.service\n",
		"proc/520/cgroup": "0::/system.slice/agent.service\n", // not all preserved
		// 510 has no /proc entry: it is logged and skipped.
		"etc/systemd/system/r6380.service":   "[Service]\nExecStart=/bin/true\n",
		"lib/systemd/system/worker@.service": "[Service]\nExecStart=/bin/true\n",
		"etc/init.d/legacy":                  "#!/bin/sh\n",
		"etc/systemd/system/agent.service":   "[Service]\nExecStart=/bin/true\n",
	})
	whole := []string{"r6380.service", "run-u7.service", "worker@2.service", "legacy.service"}
	got := holdUnits(klog.Discard, root, []int32{461, 462, 470, 480, 490, 500, 510, 520}, whole)
	want := []heldUnit{
		{Name: "r6380.service", Cgroup: "/system.slice/r6380.service", PIDs: []int32{461, 462},
			Marker: "/run/ksu/restored/r6380.service", DropIn: "/run/systemd/system/r6380.service.d/ksu-restored.conf"},
		{Name: "worker@2.service", Cgroup: "/system.slice/system-worker.slice/worker@2.service", PIDs: []int32{490},
			Marker: "/run/ksu/restored/worker@2.service", DropIn: "/run/systemd/system/worker@2.service.d/ksu-restored.conf"},
		{Name: "legacy.service", Cgroup: "/system.slice/legacy.service", PIDs: []int32{500},
			Marker: "/run/ksu/restored/legacy.service", DropIn: "/run/systemd/system/legacy.service.d/ksu-restored.conf"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("holdUnits mismatch (-want +got):\n%s", diff)
	}

	dropIn, err := os.ReadFile(filepath.Join(root, want[0].DropIn))
	if err != nil {
		t.Fatal(err)
	}
	const cond = "\n[Unit]\nConditionPathExists=!/run/ksu/restored/r6380.service\n"
	if !strings.HasSuffix(string(dropIn), cond) {
		t.Errorf("drop-in %s = %q, want it to end with %q", want[0].DropIn, dropIn, cond)
	}
	marker, err := os.ReadFile(filepath.Join(root, want[0].Marker))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(marker), "systemctl start r6380.service") || !strings.Contains(string(marker), "461 462") {
		t.Errorf("marker %s = %q, want the pids 461 462 and the command systemctl start r6380.service", want[0].Marker, marker)
	}
	for _, name := range []string{"run-u7.service", "session-1.scope", "agent.service"} {
		if _, err := os.Stat(filepath.Join(root, "run/ksu/restored", name)); err == nil {
			t.Errorf("marker for %s exists, want none", name)
		}
	}
}
