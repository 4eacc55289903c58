package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/restore"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/tests/workloads"
)

// builtWorkloads holds the workload binaries, built once per test run.
var builtWorkloads struct {
	once sync.Once
	dir  string
	err  error
}

// workloadBinary returns the path of workload name, building all of
// them on the first call.
func workloadBinary(t *testing.T, name string) string {
	t.Helper()
	builtWorkloads.once.Do(func() {
		dir, err := os.MkdirTemp("", "ksu-engine-workloads-")
		if err != nil {
			builtWorkloads.err = err
			return
		}
		builtWorkloads.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		builtWorkloads.err = workloads.Build(ctx, dir)
	})
	if errors.Is(builtWorkloads.err, workloads.ErrNoCompiler) {
		t.Skip("skipping: gcc not found, needed to build the workloads")
	}
	if builtWorkloads.err != nil {
		t.Fatalf("workloads.Build() = %v", builtWorkloads.err)
	}
	return filepath.Join(builtWorkloads.dir, name)
}

// roundTripWorkload starts workload name, dumps it with its tree, kills
// it, passes every process record of the snapshot through edit (when
// not nil), restores it and runs the workload's check. It returns
// whether the restored workload printed PASS and what it printed.
func roundTripWorkload(t *testing.T, name string, edit func(*snapshot.Process)) (bool, string) {
	t.Helper()
	return roundTripBinary(t, workloadBinary(t, name), edit)
}

// roundTripBinary is roundTripWorkload for any program that follows the
// workloads' READY, SIGUSR2, PASS protocol.
func roundTripBinary(t *testing.T, bin string, edit func(*snapshot.Process)) (bool, string) {
	t.Helper()
	name := filepath.Base(bin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// N.B. workloads.Start waits for its child in a goroutine, and that
	// wait would take the ptrace stops the dump waits for, so the
	// workload runs as a tracee whose exec.Cmd nobody waits for yet.
	dir := t.TempDir()
	tr := startTracee(t, dir, bin)
	pid := tr.cmd.Process.Pid
	var snap bytes.Buffer
	if _, err := dump.Dump(&snap, dump.Options{PIDs: []int{pid}, Producer: "engine test"}); err != nil {
		t.Fatalf("Dump(%s pid %d) = %v, want nil error", name, pid, err)
	}
	pids := treePids(t, pid)
	tr.kill()
	waitGone(t, pids)
	data := snap.Bytes()
	if edit != nil {
		data = editSnapshot(t, data, edit)
	}
	if _, err := restore.Restore(bytes.NewReader(data), restore.Options{Logf: t.Logf}); err != nil {
		t.Fatalf("Restore(%s) = %v, want nil error", name, err)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		unix.Wait4(pids[0], &ws, 0, nil)
	})
	rw, err := workloads.Attach(pid, tr.out)
	if err != nil {
		t.Fatal(err)
	}
	pass, out, err := rw.Check(ctx)
	if err != nil {
		t.Fatalf("Check(%s) after restore = %v, output %q", name, err, out)
	}
	return pass, out
}

// editSnapshot copies the snapshot stream data, passing every process
// record through edit: tests use it to drop state that a restore would
// otherwise rebuild and show that the workload's check notices.
func editSnapshot(t *testing.T, data []byte, edit func(*snapshot.Process)) []byte {
	t.Helper()
	rd, err := snapshot.NewReader(bytes.NewReader(data), snapshot.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out bytes.Buffer
	sw, err := snapshot.NewWriter(&out, snapshot.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	meta := rd.Meta()
	if err := sw.WriteMeta(&meta); err != nil {
		t.Fatal(err)
	}
	for {
		sec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := copySection(sw, sec, edit); err != nil {
			t.Fatalf("copy section %v: %v", sec.Type, err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func copySection(sw *snapshot.Writer, sec *snapshot.Section, edit func(*snapshot.Process)) error {
	switch sec.Type {
	case snapshot.SectionProcess:
		p, err := sec.Process()
		if err != nil {
			return err
		}
		edit(p)
		return sw.WriteProcess(p)
	case snapshot.SectionFile:
		f, err := sec.File()
		if err != nil {
			return err
		}
		return sw.WriteFile(f)
	case snapshot.SectionPipe:
		p, err := sec.Pipe()
		if err != nil {
			return err
		}
		return sw.WritePipe(p)
	case snapshot.SectionPath:
		e, err := sec.Path()
		if err != nil {
			return err
		}
		return sw.WritePath(e)
	case snapshot.SectionPages:
		return sw.WritePages(sec.Pages(), sec)
	}
	return errors.New("section type not handled by the test's copy")
}

// TestIntegrationSignalState round-trips the signals and timers
// workloads, and shows for each kind of state that the workload's check
// fails when the snapshot loses it.
func TestIntegrationSignalState(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		name     string
		workload string
		edit     func(*snapshot.Process)
		wantPass bool
	}{
		{"signals", "signals", nil, true},
		{"signals without process-wide pending", "signals", func(p *snapshot.Process) { p.Pending = nil }, false},
		{"signals without thread pending", "signals", func(p *snapshot.Process) {
			for i := range p.Threads {
				p.Threads[i].Pending = nil
			}
		}, false},
		{"signals with SIGPIPE no longer ignored", "signals", func(p *snapshot.Process) {
			p.Sigactions = slices.DeleteFunc(p.Sigactions, func(a snapshot.Sigaction) bool { return a.Signal == int32(unix.SIGPIPE) })
		}, false},
		{"timers", "timers", nil, true},
		{"timers without itimers", "timers", func(p *snapshot.Process) { p.Itimers = nil }, false},
		{"timers without POSIX timers", "timers", func(p *snapshot.Process) { p.PosixTimers = nil }, false},
		{"identity", "identity", nil, true},
		{"identity without scheduling", "identity", func(p *snapshot.Process) {
			for i := range p.Threads {
				p.Threads[i].SchedPolicy, p.Threads[i].Nice = 0, 0
			}
		}, false},
		{"identity without personality", "identity", func(p *snapshot.Process) { p.Identity.Personality = 0 }, false},
		{"identity without groups", "identity", func(p *snapshot.Process) { p.Identity.Groups = nil }, false},
		{"identity without oom_score_adj", "identity", func(p *snapshot.Process) { p.Identity.OOMScoreAdj = 0 }, false},
		{"identity without no_new_privs", "identity", func(p *snapshot.Process) { p.Identity.NoNewPrivs = false }, false},
		{"identity without timer slack", "identity", func(p *snapshot.Process) {
			for i := range p.Threads {
				p.Threads[i].TimerSlack = 50000
			}
		}, false},
		{"identity dumpable", "identity", func(p *snapshot.Process) { p.Identity.Dumpable = 1 }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pass, out := roundTripWorkload(t, tt.workload, tt.edit)
			if pass != tt.wantPass {
				t.Errorf("%s after restore: pass = %v, want %v; output:\n%s", tt.workload, pass, tt.wantPass, out)
			}
			t.Logf("%s: %s", tt.workload, out)
		})
	}
}

// TestIntegrationCredentials round-trips a process that is not root and
// shows that its check fails when the snapshot loses its capabilities.
func TestIntegrationCredentials(t *testing.T) {
	needRoot(t)
	bin := buildC(t, t.TempDir(), "creds")
	for _, tt := range []struct {
		name     string
		edit     func(*snapshot.Process)
		wantPass bool
	}{
		{"kept", nil, true},
		{"without ambient", func(p *snapshot.Process) { p.Identity.CapAmbient = 0 }, false},
		{"with full bounding set", func(p *snapshot.Process) { p.Identity.CapBounding = 1<<41 - 1 }, false},
		{"as root", func(p *snapshot.Process) { p.Identity.UID, p.Identity.EUID, p.Identity.SUID = 0, 0, 0 }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pass, out := roundTripBinary(t, bin, tt.edit)
			if pass != tt.wantPass {
				t.Errorf("creds after restore: pass = %v, want %v; output:\n%s", pass, tt.wantPass, out)
			}
			t.Logf("creds: %s", out)
		})
	}
}
