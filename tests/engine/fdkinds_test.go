package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/dump"
)

// fdKinds are the objects the fdkinds tracee checks, named as its
// argument that damages one of them.
var fdKinds = []string{"eventfd", "epoll", "timerfd", "signalfd", "memfd", "fifo", "append", "deleted"}

// runChecked tells a tracee started in dir to check itself and returns
// its exit status and output once the restored root pid exits.
func runChecked(t *testing.T, dir string, tr *tracee, pid int) (int, string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "check"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ws := waitExit(t, pid, 20*time.Second)
	out, _ := os.ReadFile(tr.out)
	if !ws.Exited() {
		t.Fatalf("restored process %d ended with %#x, want an exit; output:\n%s", pid, uint32(ws), out)
	}
	return ws.ExitStatus(), string(out)
}

func TestIntegrationFDKinds(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tr := startTracee(t, dir, buildC(t, dir, "fdkinds"))
	pids := dumpKillRestore(t, tr)
	status, out := runChecked(t, dir, tr, pids[0])
	if status != 0 || !strings.Contains(out, "PASS") {
		t.Errorf("restored fdkinds exit status = %d, output:\n%s\nwant 0 and PASS", status, out)
	}
}

// TestIntegrationFDKindsCatchLoss damages one object per kind in a
// restored tracee and expects its check to name the kind, so a restore
// that lost that object could not pass unnoticed.
func TestIntegrationFDKindsCatchLoss(t *testing.T) {
	needRoot(t)
	bin := buildC(t, t.TempDir(), "fdkinds")
	for _, kind := range fdKinds {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			tr := startTracee(t, dir, bin, kind)
			pids := dumpKillRestore(t, tr)
			status, out := runChecked(t, dir, tr, pids[0])
			if status == 0 || strings.Contains(out, "PASS") {
				t.Errorf("damaged %s: exit status = %d, output:\n%s\nwant a failure", kind, status, out)
			}
			want := "FAIL: " + kind
			if kind == "eventfd" {
				want = "FAIL: eventfd: read"
			}
			if !strings.Contains(out, want) {
				t.Errorf("damaged %s: output:\n%s\nwant %q", kind, out, want)
			}
		})
	}
}

// TestIntegrationEpollClosedTarget dumps a process whose epoll instance
// watches a pipe through an fd closed after EPOLL_CTL_ADD. The dump must
// reject it with that reason and leave the process running untouched.
func TestIntegrationEpollClosedTarget(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tr := startTracee(t, dir, buildC(t, dir, "fdkinds"), "closed-target")
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	_, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}, Exit: dump.ExitKill})
	var reject *dump.RejectError
	if !errors.As(err, &reject) {
		t.Fatalf("Dump(%d) = %v, want a *RejectError", pid, err)
	}
	for _, want := range []string{fmt.Sprintf("process %d", pid), "(epoll)", "closed after it was added"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Dump(%d) = %q, want it to name %q", pid, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "check"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tr.waitOutput(t, "PASS", 10*time.Second)
}
