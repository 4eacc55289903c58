package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeProcess is one process of a fake /proc.
type fakeProcess struct {
	pid, ppid int
	comm      string
	kthread   bool
	pgrp      int // 0 means pid
}

// writeFakeProc writes a /proc with a stat file per process.
func writeFakeProc(t *testing.T, procs []fakeProcess) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		flags := 0
		if p.kthread {
			flags = pfKthread
		}
		// Fields 4 to 9 are ppid, pgrp, session, tty, tpgid and flags;
		// the other 44 numeric fields are 0.
		pgrp := p.pgrp
		if pgrp == 0 {
			pgrp = p.pid
		}
		stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 %d%s\n", p.pid, p.comm, p.ppid, pgrp, p.pid, flags,
			strings.Repeat(" 0", 43))
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSelectAll(t *testing.T) {
	proc := writeFakeProc(t, []fakeProcess{
		{pid: 1, comm: "systemd"},
		{pid: 2, comm: "kthreadd", kthread: true},
		{pid: 3, ppid: 2, comm: "kworker/0:0", kthread: true},
		{pid: 100, ppid: 1, comm: "systemd-journal"},
		{pid: 101, ppid: 1, comm: "agetty"},
		{pid: 104, ppid: 1, comm: "dbus-daemon"},
		{pid: 102, ppid: 1, comm: "systemd"},
		{pid: 103, ppid: 102, comm: "pipewire"},
		{pid: 200, ppid: 1, comm: "sshd"},
		{pid: 201, ppid: 200, comm: "bash"},
		{pid: 202, ppid: 201, comm: "ksu"},
		{pid: 203, ppid: 202, comm: "exe"},
		{pid: 204, ppid: 201, comm: "head", pgrp: 202},
		{pid: 300, ppid: 1, comm: "nginx"},
		{pid: 301, ppid: 300, comm: "nginx"},
		{pid: 400, ppid: 1, comm: "qemu-ga"},
		{pid: 401, ppid: 400, comm: "sh"},
		{pid: 500, ppid: 1, comm: "supervisor"},
		{pid: 501, ppid: 500, comm: "worker"},
		{pid: 502, ppid: 500, comm: "qemu-ga"},
		{pid: 600, ppid: 1, comm: "redis-server"},
	})
	h := host{proc: proc, self: 202}
	got, err := h.selectAll([]string{"qemu-ga"})
	if err != nil {
		t.Fatalf("selectAll() = %v, want nil error", err)
	}
	if want := []int{300, 501, 600}; !slices.Equal(got.Roots, want) {
		t.Errorf("selectAll().Roots = %v, want %v", got.Roots, want)
	}
	ancestorOf := func(pid int, comm string) string {
		return fmt.Sprintf("an ancestor of process %d (%s), which is left out, "+
			"and a tree is preserved with all its descendants", pid, comm)
	}
	want := map[int]string{
		1:   reasonInit,
		2:   reasonKernelThread,
		3:   reasonKernelThread,
		100: reasonDaemon,
		101: reasonGetty,
		104: reasonBus,
		102: reasonDaemon,
		103: "a descendant of process 102 (systemd), which is left out",
		200: "an ancestor of ksu, which cannot freeze itself",
		201: "an ancestor of ksu, which cannot freeze itself",
		202: reasonKSU,
		203: "a descendant of process 202 (ksu), which is left out",
		204: reasonPipeline,
		400: reasonExcluded,
		401: "a descendant of process 400 (qemu-ga), which is left out",
		500: ancestorOf(502, "qemu-ga"),
		502: reasonExcluded,
	}
	reasons := map[int]string{}
	for _, s := range got.Skipped {
		reasons[s.PID] = s.Reason
	}
	if diff := cmp.Diff(want, reasons); diff != "" {
		t.Errorf("selectAll() skipped reasons mismatch (-want +got):\n%s", diff)
	}
}

func TestSelectAllNothingLeft(t *testing.T) {
	proc := writeFakeProc(t, []fakeProcess{{pid: 1, comm: "init"}, {pid: 7, ppid: 1, comm: "ksu"}})
	_, err := host{proc: proc, self: 7}.selectAll(nil)
	if err == nil || !strings.Contains(err.Error(), "no process left") {
		t.Errorf("selectAll(only init and ksu) = %v, want an error saying no process is left", err)
	}
}

func TestUnitName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nginx", "nginx.service"},
		{"nginx.service", "nginx.service"},
		{"session-3.scope", "session-3.scope"},
		{"user.slice", "user.slice"},
		{"foo.bar", "foo.bar.service"},
		{"ksu-demo-svc", "ksu-demo-svc.service"},
	} {
		if got := unitName(tt.in); got != tt.want {
			t.Errorf("unitName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSelectionValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sel     selection
		wantErr string
	}{
		{"pid", selection{pids: pidList{5}}, ""},
		{"all with exclude", selection{all: true, excludes: stringList{"sshd"}}, ""},
		{"all with pid", selection{all: true, pids: pidList{5}}, "--all already selects"},
		{"exclude without all", selection{units: stringList{"a"}, excludes: stringList{"b"}}, "exclude applies to --all only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sel.validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("validate(%+v) = %v, want an error containing %q", tt.sel, err, tt.wantErr)
			}
		})
	}
}

func TestResolvePIDMissing(t *testing.T) {
	_, err := localHost().resolve(selection{pids: pidList{1 << 30}})
	if want := fmt.Sprintf("--pid %d: no such process", 1<<30); err == nil || err.Error() != want {
		t.Errorf("resolve(--pid %d) = %v, want %q", 1<<30, err, want)
	}
}

func TestResolvePIDsGroupsTrees(t *testing.T) {
	// sh is the root; its sleep child, given too, joins sh's tree.
	sh := startChild(t, "sh", "-c", "sleep 60 & wait")
	kid := waitChild(t, sh)
	got, err := localHost().resolve(selection{pids: pidList{kid, sh}})
	if err != nil {
		t.Fatalf("resolve(--pid %d --pid %d) = %v, want nil error", kid, sh, err)
	}
	if want := []int{sh}; !slices.Equal(got.Roots, want) {
		t.Errorf("resolve(--pid %d --pid %d).Roots = %v, want %v", kid, sh, got.Roots, want)
	}
	t.Cleanup(func() { killPID(kid) })
}

// waitChild waits, at most 5 seconds, until process pid has a child,
// and returns it.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for range 500 {
		b, _ := os.ReadFile(path)
		if f := strings.Fields(string(b)); len(f) > 0 {
			kid, _ := strconv.Atoi(f[0])
			return kid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d started no child in 5s", pid)
	return 0
}

func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// testCgroup creates the cgroup ksu-test-PID under the cgroup2 mount
// with the sub-cgroups subs, and removes them all when the test ends,
// after killing what is left in them with cgroup.kill. It returns the
// mount and the cgroup's directory.
func testCgroup(t *testing.T, subs ...string) (root, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create cgroups")
	}
	root, err := localHost().cgroup2Root()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir = filepath.Join(root, fmt.Sprintf("ksu-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("skipping: cannot create a cgroup: %v", err)
	}
	all := []string{dir}
	for _, sub := range subs {
		path := filepath.Join(dir, sub)
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
		for p := path; p != dir; p = filepath.Dir(p) {
			if !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
			t.Logf("kill cgroup %s: %v", dir, err)
		}
		// Deepest first: a cgroup with sub-cgroups cannot be removed.
		slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
		for _, p := range all {
			removeCgroup(t, p)
		}
	})
	return root, dir
}

// removeCgroup removes cgroup dir once its killed processes are gone,
// trying for at most 5 seconds.
func removeCgroup(t *testing.T, dir string) {
	var err error
	for range 100 {
		if err = os.Remove(dir); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("remove cgroup %s: %v", dir, err)
}

// moveTo moves process pid into cgroup dir.
func moveTo(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("move process %d into %s: %v", pid, dir, err)
	}
}

// startIn starts argv, moves it into cgroup dir and returns its pid.
func startIn(t *testing.T, dir string, argv ...string) int {
	t.Helper()
	pid := startChild(t, argv...)
	moveTo(t, dir, pid)
	return pid
}

func TestIntegrationSelectCgroup(t *testing.T) {
	root, dir := testCgroup(t, "sub")
	a := startIn(t, dir, "sleep", "60")
	b := startIn(t, filepath.Join(dir, "sub"), "sleep", "60")
	sh := startIn(t, filepath.Join(dir, "sub"), "sh", "-c", "sleep 60 & wait")
	kid := waitChild(t, sh)
	want := []int{a, b, sh}
	slices.Sort(want)
	name := filepath.Base(dir)
	for _, path := range []string{name, "/" + name, dir} {
		got, err := localHost().resolve(selection{cgroups: stringList{path}})
		if err != nil {
			t.Errorf("resolve(--cgroup %s) = %v, want nil error", path, err)
			continue
		}
		if !slices.Equal(got.Roots, want) {
			t.Errorf("resolve(--cgroup %s).Roots = %v, want %v (sh %d with its child %d in its tree)",
				path, got.Roots, want, sh, kid)
		}
	}

	empty := filepath.Join(root, name, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	defer removeCgroup(t, empty)
	_, err := localHost().resolve(selection{cgroups: stringList{name + "/empty"}})
	if err == nil || !strings.Contains(err.Error(), "--cgroup "+name+"/empty: no process in cgroup") {
		t.Errorf("resolve(--cgroup %s/empty) = %v, want an error naming the selector", name, err)
	}
	_, err = localHost().resolve(selection{cgroups: stringList{name + "/missing"}})
	if err == nil || !strings.Contains(err.Error(), "is not a cgroup v2 directory") {
		t.Errorf("resolve(--cgroup %s/missing) = %v, want not a cgroup v2 directory", name, err)
	}
}

func TestIntegrationSelectUnit(t *testing.T) {
	_, dir := testCgroup(t, "system.slice/demo.service", "user.slice/user-0.slice/other.service",
		"a.slice/twice.service", "b.slice/twice.service")
	// The test cgroup stands in for systemd's root.
	h := host{proc: procRoot, cgroupRoot: dir, self: os.Getpid()}
	demo := startIn(t, filepath.Join(dir, "system.slice/demo.service"), "sleep", "60")
	other := startIn(t, filepath.Join(dir, "user.slice/user-0.slice/other.service"), "sleep", "60")
	startIn(t, filepath.Join(dir, "a.slice/twice.service"), "sleep", "60")

	for _, tt := range []struct {
		unit    string
		want    []int
		wantErr string
	}{
		{unit: "demo", want: []int{demo}},
		{unit: "demo.service", want: []int{demo}},
		{unit: "other", want: []int{other}},
		{unit: "missing", wantErr: "--unit missing: no cgroup named missing.service"},
		{unit: "twice", wantErr: "--unit twice: several cgroups named twice.service"},
		{unit: "demo.timer", wantErr: "only services, scopes and slices have one"},
	} {
		got, err := h.resolve(selection{units: stringList{tt.unit}})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("resolve(--unit %s) = %v, want an error containing %q", tt.unit, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolve(--unit %s) = %v, want nil error", tt.unit, err)
			continue
		}
		if !slices.Equal(got.Roots, tt.want) {
			t.Errorf("resolve(--unit %s).Roots = %v, want %v", tt.unit, got.Roots, tt.want)
		}
	}
}
