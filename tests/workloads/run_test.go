package workloads

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	readyTimeout = 30 * time.Second
	checkTimeout = 30 * time.Second
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// builtWorkloads builds every workload once per test binary.
func builtWorkloads(t *testing.T) []Binary {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "ksu-workloads-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildErr = Build(ctx, buildDir)
	})
	if errors.Is(buildErr, ErrNoCompiler) {
		t.Skip("skipping: gcc not found; install gcc and libc6-dev")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	bins, err := List(buildDir)
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// skipUnmet skips a workload whose desc requires what this host lacks.
func skipUnmet(t *testing.T, b Binary) {
	t.Helper()
	if b.Desc.Root && os.Geteuid() != 0 {
		t.Skip("skipping: needs root")
	}
	for _, need := range b.Desc.Needs {
		if need != NeedShell {
			continue
		}
		for _, tool := range []string{"/bin/sh", "cat", "tr", "sha256sum"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("skipping: needs %s", tool)
			}
		}
	}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := utsString(u.Release[:])
	if ok, err := b.Desc.SupportsKernel(rel); err != nil || !ok {
		t.Skipf("skipping: needs kernel %s, running %s (%v)", b.Desc.MinKernel, rel, err)
	}
}

func utsString(field []int8) string {
	var b strings.Builder
	for _, c := range field {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// startReady starts b in a fresh directory and waits for READY.
func startReady(t *testing.T, b Binary) *Workload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout+checkTimeout)
	t.Cleanup(cancel)
	w, err := Start(ctx, b.Path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Kill(); err != nil {
			t.Error(err)
		}
	})
	readyCtx, cancelReady := context.WithTimeout(ctx, readyTimeout)
	defer cancelReady()
	if err := w.WaitReady(readyCtx); err != nil {
		t.Fatal(err)
	}
	return w
}

func check(t *testing.T, w *Workload) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	pass, out, err := w.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pass, out
}

// TestWorkloadsPassUntouched proves that every workload passes when
// nothing is done to it; one that fails here is broken, not the restore.
func TestWorkloadsPassUntouched(t *testing.T) {
	bins := builtWorkloads(t)
	if len(bins) < 14 {
		t.Errorf("List(%s) found %d workloads, want at least 14", buildDir, len(bins))
	}
	for _, b := range bins {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			skipUnmet(t, b)
			w := startReady(t, b)
			start := time.Now()
			if pass, out := check(t, w); !pass {
				t.Errorf("%s: Check() = FAIL, want PASS; output:\n%s", b.Name, out)
			}
			t.Logf("%s: verdict in %v", b.Name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestWorkloadsSurviveStop stops each workload's process group for a
// second with SIGSTOP before the check: a workload must tolerate being
// frozen, for any length of time, without failing.
func TestWorkloadsSurviveStop(t *testing.T) {
	for _, b := range builtWorkloads(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			skipUnmet(t, b)
			w := startReady(t, b)
			if err := syscall.Kill(-w.PID, syscall.SIGSTOP); err != nil {
				t.Fatalf("stop process group %d: %v", w.PID, err)
			}
			time.Sleep(time.Second)
			if err := syscall.Kill(-w.PID, syscall.SIGCONT); err != nil {
				t.Fatalf("continue process group %d: %v", w.PID, err)
			}
			if pass, out := check(t, w); !pass {
				t.Errorf("%s: Check() after SIGSTOP = FAIL, want PASS; output:\n%s", b.Name, out)
			}
		})
	}
}

// TestWorkloadsDetectChanges changes each workload's state from outside
// after READY and expects FAIL, proving that the checks can fail.
func TestWorkloadsDetectChanges(t *testing.T) {
	byName := map[string]Binary{}
	for _, b := range builtWorkloads(t) {
		byName[b.Name] = b
	}
	for _, tt := range []struct {
		workload string
		change   string
		apply    func(w *Workload, dir string) error
		wantFail string
	}{
		{"files", "truncate offset.dat", func(w *Workload, dir string) error {
			return os.Truncate(filepath.Join(dir, "offset.dat"), 1000)
		}, "regular file"},
		{"memory", "rewrite the file under a private mapping", func(w *Workload, dir string) error {
			// Overwrite in place: truncating would make the mapping raise SIGBUS.
			f, err := os.OpenFile(filepath.Join(dir, "private.dat"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 4096), 0)
			return err
		}, "private file page 0"},
		{"pipes", "write one byte into the FIFO", func(w *Workload, dir string) error {
			f, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte("!"))
			return err
		}, "fifo"},
		{"signals", "queue one more real-time signal", func(w *Workload, dir string) error {
			rtmin3 := syscall.Signal(34 + 3) // glibc's SIGRTMIN is 34
			return syscall.Kill(w.PID, rtmin3)
		}, "signal 37"},
	} {
		t.Run(tt.workload, func(t *testing.T) {
			b, ok := byName[tt.workload]
			if !ok {
				t.Fatalf("workload %s not built", tt.workload)
			}
			w := startReady(t, b)
			if err := tt.apply(w, filepath.Dir(w.Log)); err != nil {
				t.Fatalf("%s: %v", tt.change, err)
			}
			pass, out := check(t, w)
			if pass || !strings.Contains(out, tt.wantFail) {
				t.Errorf("after %s: Check() = %v, %q; want FAIL mentioning %q", tt.change, pass, out, tt.wantFail)
			}
		})
	}
}

// TestAttachChecks checks a workload through Attach, as a test does
// after a restore, when the process is no longer its child.
func TestAttachChecks(t *testing.T) {
	var bin Binary
	for _, b := range builtWorkloads(t) {
		if b.Name == "files" {
			bin = b
		}
	}
	if bin.Path == "" {
		t.Fatal("workload files not built")
	}
	started := startReady(t, bin)
	w, err := Attach(started.PID, started.Log)
	if err != nil {
		t.Fatal(err)
	}
	if w.Name != "files" {
		t.Errorf("Attach(%d).Name = %q, want %q", started.PID, w.Name, "files")
	}
	if pass, out := check(t, w); !pass {
		t.Errorf("Check() through Attach = FAIL, want PASS; output:\n%s", out)
	}
}

func TestParseDesc(t *testing.T) {
	for _, tt := range []struct {
		name    string
		data    string
		want    Desc
		wantErr bool
	}{
		{"plain", `{"root": false, "xfail": "", "min_kernel": "6.1", "needs": []}`,
			Desc{MinKernel: "6.1", Needs: []string{}}, false},
		{"needs and xfail", `{"root": true, "xfail": "no TCP repair", "min_kernel": "6.12", "needs": ["loopback"]}`,
			Desc{Root: true, Xfail: "no TCP repair", MinKernel: "6.12", Needs: []string{"loopback"}}, false},
		{"unknown need", `{"min_kernel": "6.1", "needs": ["gpu"]}`, Desc{}, true},
		{"unknown field", `{"min_kernel": "6.1", "excl": true}`, Desc{}, true},
		{"bad release", `{"min_kernel": "six"}`, Desc{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDesc("x.desc", []byte(tt.data))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseDesc(%s) error = %v, want error %v", tt.data, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseDesc(%s) mismatch (-want +got):\n%s", tt.data, diff)
			}
		})
	}
}

func TestSupportsKernel(t *testing.T) {
	for _, tt := range []struct {
		min, rel string
		want     bool
	}{
		{"6.1", "6.1.0-50-cloud-amd64", true},
		{"6.1", "6.12.117+deb12-cloud-amd64", true},
		{"6.12", "6.1.0-50-cloud-amd64", false},
		{"6.1", "5.19.0", false},
		{"6.1", "7.0.0", true},
	} {
		got, err := Desc{MinKernel: tt.min}.SupportsKernel(tt.rel)
		if err != nil || got != tt.want {
			t.Errorf("Desc{MinKernel: %q}.SupportsKernel(%q) = %v, %v; want %v, nil", tt.min, tt.rel, got, err, tt.want)
		}
	}
}

func TestResultLine(t *testing.T) {
	for _, tt := range []struct{ out, want string }{
		{"READY\nPASS\n", "PASS"},
		{"READY\nFAIL: pipe: data changed\n", "FAIL: pipe: data changed"},
		{"READY\nPAS", ""},
		{"READY\nFAIL: half a li", ""},
		{"noise\n", ""},
	} {
		if got := resultLine(tt.out); got != tt.want {
			t.Errorf("resultLine(%q) = %q, want %q", tt.out, got, tt.want)
		}
	}
}
