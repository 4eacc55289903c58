package dump

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
)

// helperEnv selects the helper that the re-executed test binary runs in
// place of the tests, and traceeEnv passes it the pid to trace.
const (
	helperEnv = "KSU_TEST_HELPER"
	traceeEnv = "KSU_TEST_TRACEE"
)

// TestMain runs a helper instead of the tests when helperEnv is set. A failing helper panics, because pkg/ code does not call os.Exit.
//
// Before the tests it marks every descriptor above 2 close-on-exec. The
// program that started the test binary may have leaked a pipe into it,
// os/exec would pass it on, and the dump rejects a child that holds a
// pipe end whose other end is outside the dumped trees.
func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		helpers := map[string]func() error{"tracer": helperTracer, "parent": helperParent}
		fn, ok := helpers[name]
		if !ok {
			panic(fmt.Sprintf("unknown helper %q", name))
		}
		if err := fn(); err != nil {
			panic(fmt.Sprintf("helper %s: %v", name, err))
		}
		return
	}
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		panic(fmt.Sprintf("close_range(3, ~0, CLOSE_RANGE_CLOEXEC): %v", err))
	}
	m.Run()
}

// helperTracer seizes and interrupts the process traceeEnv names, prints
// STOPPED, and holds it until its stdin closes, as a debugger would.
func helperTracer() error {
	pid, err := strconv.Atoi(os.Getenv(traceeEnv))
	if err != nil {
		return err
	}
	t := ptrace.NewTracer()
	defer t.Close()
	if _, err := t.SeizeProcess(pid, 0); err != nil {
		return err
	}
	if err := t.InterruptProcess(pid); err != nil {
		return err
	}
	fmt.Println("STOPPED")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

func TestIntegrationRejectTraced(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	pid := startSleep(t)
	holdWithTracer(t, pid)

	rejects := check(pid)
	if !hasTracedReject(rejects) {
		t.Errorf("check(%d) = %v, want a reject of kind \"traced, state t\"", pid, rejects)
	}
	_, err := Dump(io.Discard, Options{PIDs: []int{pid}})
	var re *RejectError
	if !errors.As(err, &re) || !strings.HasPrefix(re.Kind, "traced") {
		t.Fatalf("Dump(pid %d) = %v, want a *RejectError of kind traced", pid, err)
	}
	if !strings.Contains(re.Reason, "traces it with ptrace") {
		t.Errorf("Dump(pid %d) reason = %q, want it to name the tracer", pid, re.Reason)
	}
}

func TestIntegrationGroupStopped(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	for _, stop := range []bool{false, true} {
		t.Run(fmt.Sprintf("stopped %v", stop), func(t *testing.T) {
			pid := startSleep(t)
			if stop {
				if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				waitState(t, pid, 'T')
			}
			if rejects := check(pid); len(rejects) != 0 {
				t.Errorf("check(%d) = %v, want no rejects", pid, rejects)
			}
			tr := ptrace.NewTracer()
			defer tr.Close()
			if _, err := tr.SeizeProcess(pid, 0); err != nil {
				t.Fatal(err)
			}
			if err := tr.InterruptProcess(pid); err != nil {
				t.Fatal(err)
			}
			got, err := groupStopped(tr, pid)
			if err != nil {
				t.Fatalf("groupStopped(%d) = %v", pid, err)
			}
			if got != stop {
				t.Errorf("groupStopped(%d) = %v, want %v", pid, got, stop)
			}
			if rejects := check(pid); len(rejects) != 0 {
				t.Errorf("check(%d) while seized by the dumper = %v, want no rejects", pid, rejects)
			}

			// The detach of a dump that lets the processes run on puts
			// a stopped process back into its group stop.
			if err := tr.Close(); err != nil {
				t.Fatalf("detach process %d: %v", pid, err)
			}
			want := byte('S')
			if stop {
				want = 'T'
			}
			waitState(t, pid, want)
		})
	}
}

// startSleep starts "sleep 60" and kills and reaps it when the test ends.
func startSleep(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// holdWithTracer traces pid from a helper process until the test ends.
func holdWithTracer(t *testing.T, pid int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=tracer", traceeEnv+"="+strconv.Itoa(pid))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "STOPPED\n" {
		t.Fatalf("tracer helper output %q, %v; want STOPPED", line, err)
	}
}

func hasTracedReject(rejects []*RejectError) bool {
	for _, r := range rejects {
		if r.Kind == "traced, state t" {
			return true
		}
	}
	return false
}

// waitState waits up to five seconds for pid to reach state.
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	for range 500 {
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == state {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not reach state %c within 5s", pid, state)
}

// needCap skips the test unless the process has capability c in its
// effective set.
func needCap(t *testing.T, c int) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	if data[c/32].Effective&(1<<(c%32)) == 0 {
		t.Skipf("skipping: needs capability %d", c)
	}
}
