package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// tmpfsReport is the tmpfs part of /run/ksu/report.json.
type tmpfsReport struct {
	Tmpfs *struct {
		Dirs     int      `json:"dirs"`
		Files    int      `json:"files"`
		Bytes    uint64   `json:"bytes"`
		Kept     []string `json:"kept"`
		Tmpfiles []string `json:"tmpfiles"`
		Error    string   `json:"error"`
	} `json:"tmpfs"`
}

// tmpfsWorkloadBytes is the file content on tmpfs of one tmpfs workload
// (tests/workloads/c/tmpfs.c): its data file in /run and its shared
// mapping in /dev/shm. Its file in /tmp is on disk.
const tmpfsWorkloadBytes = 3*4096 + 100 + 4*4096

// checkTmpfsRestored checks, after an update, what the restore recreated
// for every tmpfs workload of groups. The report must count its /run and
// /dev/shm files and keep its /tmp file. Its paths must exist with their
// kinds, and /dev/shm must be a tmpfs that the real init kept.
func checkTmpfsRestored(t *testing.T, ctx context.Context, g *qemu.Guest, groups ...*crossGroup) {
	t.Helper()
	var pids []int
	for _, c := range groups {
		for _, w := range c.all {
			if c.argv0[w.PID] == path.Join(scenario.WorkloadDir, "tmpfs") {
				pids = append(pids, w.PID)
			}
		}
	}
	if len(pids) == 0 {
		return
	}

	out, err := g.Output(ctx, "cat", "/run/ksu/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep tmpfsReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("decode the restore report: %v", err)
	}
	if rep.Tmpfs == nil {
		t.Fatalf("restore report has no tmpfs part:\n%s", out)
	}

	r := rep.Tmpfs
	t.Logf("tmpfs content recreated: %d directories, %d files, %d bytes; kept on disk %q by %q",
		r.Dirs, r.Files, r.Bytes, r.Kept, r.Tmpfiles)
	if r.Error != "" {
		t.Errorf("restore report tmpfs error: %s", r.Error)
	}
	if r.Files < 2*len(pids) || r.Bytes < uint64(tmpfsWorkloadBytes*len(pids)) {
		t.Errorf("restore report: %d files, %d bytes recreated, want at least %d and %d",
			r.Files, r.Bytes, 2*len(pids), tmpfsWorkloadBytes*len(pids))
	}

	for _, pid := range pids {
		tmp := fmt.Sprintf("/tmp/ksutest-tmp-%d", pid)
		if !slices.Contains(r.Kept, tmp) {
			t.Errorf("restore report kept %q, want it to contain %s", r.Kept, tmp)
		}
		checkGuestPaths(t, ctx, g, map[string]string{
			fmt.Sprintf("/run/ksutest/%d", pid):         "directory",
			fmt.Sprintf("/run/ksutest/%d/data", pid):    "regular file",
			fmt.Sprintf("/run/ksutest/%d/sock", pid):    "socket",
			fmt.Sprintf("/dev/shm/ksutest-shm-%d", pid): "regular file",
			tmp: "regular file",
		})
	}
	// The kept /tmp file proves something only if the boot's cleanup ran.
	state, err := g.Output(ctx, "systemctl", "show", "-p", "ActiveState", "--value", "systemd-tmpfiles-setup.service")
	if err != nil || strings.TrimSpace(string(state)) != "active" {
		t.Errorf("systemd-tmpfiles-setup.service state = %q, %v, want active", state, err)
	}
	fsType, err := g.Output(ctx, "stat", "-f", "-c", "%T", "/dev/shm")
	if err != nil || strings.TrimSpace(string(fsType)) != "tmpfs" {
		t.Errorf("stat -f /dev/shm = %q, %v, want a tmpfs", fsType, err)
	}
}

// checkGuestPaths checks that each path exists in the guest with the
// kind that stat(1) prints.
func checkGuestPaths(t *testing.T, ctx context.Context, g *qemu.Guest, kinds map[string]string) {
	t.Helper()
	for p, want := range kinds {
		out, err := g.Output(ctx, "stat", "-c", "%F", p)
		if err != nil {
			t.Errorf("after the update: stat %s: %v", p, err)
			continue
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("after the update: %s is a %s, want a %s", p, got, want)
		}
	}
}
