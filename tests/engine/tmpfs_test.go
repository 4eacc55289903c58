package engine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/restore"
)

// Bytes of file content that the tmpfs workload writes: its data file,
// its shared mapping and its /tmp file (tests/workloads/c/tmpfs.c).
const tmpfsWorkloadBytes = 3*4096 + 100 + 4*4096 + 5000

// startTmpfsWorkload starts the tmpfs workload with all its paths below
// a new directory on the /dev/shm tmpfs, and returns the tracee and that
// directory.
func startTmpfsWorkload(t *testing.T) (*tracee, string) {
	t.Helper()
	needRoot(t)
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("skipping: /dev/shm is not a tmpfs")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: gcc not found, needed to build the tmpfs workload")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tmpfs")
	src := filepath.Join("..", "workloads", "c")
	out, err := exec.Command(gcc, "-static", "-O1", "-o", bin,
		filepath.Join(src, "tmpfs.c"), filepath.Join(src, "wl.c"), "-lm").CombinedOutput()
	if err != nil {
		t.Fatalf("build tmpfs workload: %v\n%s", err, out)
	}
	base, err := os.MkdirTemp("/dev/shm", "ksu-tmpfs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return startTracee(t, dir, bin, filepath.Join(base, "run"), base, base), base
}

// dumpAndKill dumps the tree of tr and kills it.
func dumpAndKill(t *testing.T, tr *tracee) (*bytes.Buffer, []int) {
	t.Helper()
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	if _, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}, Producer: "engine test"}); err != nil {
		t.Fatalf("Dump(%d) = %v, want nil error", pid, err)
	}
	pids := treePids(t, pid)
	tr.kill()
	waitGone(t, pids)
	return &snap, pids
}

// TestIntegrationTmpfsRecreated removes the workload's tmpfs directory
// between the dump and the restore, as a new kernel's empty tmpfs would
// be. The restore must recreate it, and the workload must find every
// path with its content.
func TestIntegrationTmpfsRecreated(t *testing.T) {
	tr, base := startTmpfsWorkload(t)
	snap, pids := dumpAndKill(t, tr)
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	stats, err := restore.Restore(snap, restore.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("Restore() = %v, want nil error", err)
	}
	if got := stats.Paths.Files; got != 3 {
		t.Errorf("Restore() recreated %d files, want 3 (data, shared mapping, tmp file)", got)
	}
	if got := stats.Paths.Bytes; got != tmpfsWorkloadBytes {
		t.Errorf("Restore() wrote %d bytes of file content, want %d", got, tmpfsWorkloadBytes)
	}
	// base, base/run and base/run/PID; /dev/shm itself existed.
	if got := stats.Paths.Dirs; got != 3 {
		t.Errorf("Restore() created %d directories, want 3 below the mount point", got)
	}
	unix.Kill(pids[0], unix.SIGUSR2)
	ws := waitExit(t, pids[0], 20*time.Second)
	out, _ := os.ReadFile(tr.out)
	if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(string(out), "PASS") {
		t.Errorf("restored tmpfs workload: wait status %#x, output:\n%s\nwant exit 0 and PASS", uint32(ws), out)
	}
}

// TestIntegrationTmpfsBlocked puts a regular file where the workload's
// tmpfs directory was. The restore cannot recreate the directory, so the
// workload's tree fails, and with it the restore, naming the path.
func TestIntegrationTmpfsBlocked(t *testing.T) {
	tr, base := startTmpfsWorkload(t)
	snap, pids := dumpAndKill(t, tr)
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := restore.Restore(snap, restore.Options{Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "recreate "+base) {
		t.Fatalf("Restore() = %v, want an error naming recreate %s", err, base)
	}
	waitGone(t, pids) // the failed tree leaves no process behind
}
