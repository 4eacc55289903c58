package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/restore"
)

func TestIntegrationSharedMemory(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tr := startTracee(t, dir, buildC(t, dir, "shmem"))
	pids := dumpKillRestore(t, tr)
	if len(pids) != 2 {
		t.Fatalf("tree of %d = %v, want parent and child", pids[0], pids)
	}
	status, out := runChecked(t, dir, tr, pids[0])
	if status != 0 || !strings.Contains(out, "PASS") {
		t.Errorf("restored shmem exit status = %d, output:\n%s\nwant 0 and PASS", status, out)
	}
}

// TestIntegrationSharedMemoryCatchLoss damages one region per kind in a
// restored tracee: the child swaps a shared region for a private copy,
// or the parent changes a byte, as a lossy restore would. The check
// must name the region.
func TestIntegrationSharedMemoryCatchLoss(t *testing.T) {
	needRoot(t)
	bin := buildC(t, t.TempDir(), "shmem")
	for _, kind := range []string{"anon", "memfd", "file", "deleted", "private"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			tr := startTracee(t, dir, bin, kind)
			pids := dumpKillRestore(t, tr)
			status, out := runChecked(t, dir, tr, pids[0])
			if status == 0 || strings.Contains(out, "PASS") {
				t.Errorf("damaged %s: exit status = %d, output:\n%s\nwant a failure", kind, status, out)
			}
			if want := "FAIL: " + kind + ":"; !strings.Contains(out, want) {
				t.Errorf("damaged %s: output:\n%s\nwant %q", kind, out, want)
			}
		})
	}
}

// TestIntegrationSharedFileReplaced replaces a file mapped MAP_SHARED
// between the dump and the restore. The restore must fail, because the
// file holds the mapping's data, and leave no process behind.
func TestIntegrationSharedFileReplaced(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tr := startTracee(t, dir, buildC(t, dir, "shmem"))
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	if _, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}}); err != nil {
		t.Fatalf("Dump(%d) = %v, want nil error", pid, err)
	}
	pids := treePids(t, pid)
	tr.kill()
	waitGone(t, pids)
	path := filepath.Join(dir, "shared.dat")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, 16*4096), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := restore.Restore(&snap, restore.Options{Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "shared.dat") {
		t.Fatalf("Restore() = %v, want an error naming the replaced shared.dat", err)
	}
	// A killed child is reaped by init a moment later, so give it time.
	for _, p := range pids {
		deadline := time.Now().Add(5 * time.Second)
		for processExists(p) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if processExists(p) {
			t.Errorf("process %d exists 5s after the failed restore, want it killed", p)
		}
	}
}
