package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/pkg/klog"
)

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
