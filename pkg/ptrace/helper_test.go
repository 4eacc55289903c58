package ptrace

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv selects the helper that the re-executed test binary runs in
// place of the tests.
const helperEnv = "KSU_TEST_HELPER"

// computeRounds is how long the "compute" helper works: about a second
// of CPU time on a 2020s x86 core.
const computeRounds = 300_000_000

// TestMain runs a helper instead of the tests when helperEnv is set.
// Neither path calls os.Exit, which ksu bans under pkg/: the testing
// package exits with m.Run's result, and a failing helper panics.
func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		runHelper(name)
		return
	}
	m.Run()
}

func runHelper(name string) {
	helpers := map[string]func() error{
		"compute":     helperCompute,
		"deathtracer": helperDeathTracer,
		"pselect":     helperPselect,
		"read":        helperRead,
		"spin":        helperSpin,
		"tracer":      helperTracer,
		"undotracer":  helperUndoTracer,
	}
	fn, ok := helpers[name]
	if !ok {
		panic(fmt.Sprintf("unknown helper %q", name))
	}
	if err := fn(); err != nil {
		panic(fmt.Sprintf("helper %s: %v", name, err))
	}
}

// compute mixes integer and floating-point work, so that a wrong
// general or vector register anywhere in the loop changes the result.
func compute(rounds int) uint64 {
	x := uint64(0x9e3779b97f4a7c15)
	f := 1.0
	var sum uint64
	for i := range rounds {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		f = f*1.0000001 + float64(x&0xff)/256
		if f > 1e6 {
			f /= 1e6
		}
		sum += x ^ uint64(i) ^ uint64(f*1e9)
	}
	return sum
}

// helperCompute prints its thread id, runs compute on that thread and
// prints the result. SIGUSR1 is caught and counted.
func helperCompute() error {
	runtime.LockOSThread()
	usr1 := make(chan os.Signal, 8)
	signal.Notify(usr1, unix.SIGUSR1)
	fmt.Printf("READY %d\n", unix.Gettid())
	sum := compute(computeRounds)
	fmt.Printf("RESULT %d USR1 %d\n", sum, len(usr1))
	return nil
}

// helperRead prints its thread id, then blocks in read(2) on stdin and
// prints what it read.
func helperRead() error {
	runtime.LockOSThread()
	if err := unix.SetNonblock(0, false); err != nil {
		return err
	}
	fmt.Printf("READY %d\n", unix.Gettid())
	buf := make([]byte, 64)
	n, err := unix.Read(0, buf)
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	fmt.Printf("READ %q\n", buf[:n])
	return nil
}

// sigbit returns the mask bit of signal sig.
func sigbit(sig unix.Signal) uint64 { return 1 << (sig - 1) }

// helperPselect blocks SIGUSR2, prints its thread id, then waits in pselect6
// with a temporary mask that blocks SIGWINCH instead, until SIGUSR1
// interrupts it. It prints the mask it has afterwards.
func helperPselect() error {
	runtime.LockOSThread()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, unix.SIGUSR1)
	real := unix.Sigset_t{Val: [16]uint64{sigbit(unix.SIGUSR2)}}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &real, nil); err != nil {
		return err
	}
	fmt.Printf("READY %d\n", unix.Gettid())
	temp := unix.Sigset_t{Val: [16]uint64{sigbit(unix.SIGWINCH)}}
	// N.B. pselect6, not ppoll: x/sys/unix v0.50.0 passes ppoll a
	// sigset size of 0, which the kernel rejects.
	if _, err := unix.Pselect(0, nil, nil, nil, nil, &temp); err != unix.EINTR {
		return fmt.Errorf("pselect6 = %v, want EINTR", err)
	}
	var mask unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, nil, &mask); err != nil {
		return err
	}
	fmt.Printf("MASK %#x\n", mask.Val[0])
	return nil
}

// spinThreads is how many extra threads the "spin" helper starts.
const spinThreads = 3

// spinCounter is what the spin threads increment, about once per
// millisecond each.
var spinCounter atomic.Uint64

// helperSpin starts threads that count, prints the counter's address and
// exits when stdin closes.
func helperSpin() error {
	// READY comes once every spinning goroutine runs on its own thread,
	// so a tracer that seizes the threads after READY holds them all.
	var started sync.WaitGroup
	started.Add(spinThreads)
	for range spinThreads {
		go func() {
			runtime.LockOSThread()
			started.Done()
			for {
				spinCounter.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	started.Wait()
	fmt.Printf("READY %#x\n", counterAddr())
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

// helperTracer seizes and interrupts every thread of the process in
// KSU_TEST_TRACEE, runs getpid in one, prints "STOPPED" and waits to be
// killed.
func helperTracer() error {
	pid, err := strconv.Atoi(os.Getenv("KSU_TEST_TRACEE"))
	if err != nil {
		return err
	}
	t := NewTracer()
	if _, err := t.SeizeProcess(pid, 0); err != nil {
		return err
	}
	if err := t.InterruptProcess(pid); err != nil {
		return err
	}
	if _, err := t.Syscall(pid, unix.SYS_GETPID); err != nil {
		return err
	}
	fmt.Println("STOPPED")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// helper is a running helper process.
type helper struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startHelper re-executes the test binary as helper name. The test ends
// by closing its stdin and killing it, by pid, if it still runs.
func startHelper(t testing.TB, name string, env ...string) *helper {
	t.Helper()
	return startHelperTo(t, name, os.Stderr, env...)
}

// startHelperTo is startHelper with the helper's stderr sent to stderr.
func startHelperTo(t testing.TB, name string, stderr io.Writer, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Without asynchronous preemption the Go runtime sends the helper
	// no SIGURG, so its registers change only when a test wants them to.
	cmd.Env = append(append(os.Environ(), helperEnv+"="+name, "GODEBUG=asyncpreemptoff=1"), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", name, err)
	}
	h := &helper{name: name, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return h
}

// expect reads the helper's next output line, which must start with
// prefix, and returns the rest. It fails the test after timeout.
func (h *helper) expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-h.nextLine():
		if !ok {
			t.Fatalf("helper output ended before %q: %v", prefix, h.lines.Err())
		}
		rest, found := strings.CutPrefix(l, prefix)
		if !found {
			t.Fatalf("helper printed %q, want a line starting with %q", l, prefix)
		}
		return strings.TrimSpace(rest)
	case <-time.After(timeout):
		t.Fatalf("helper printed no %q line within %v", prefix, timeout)
	}
	return ""
}

// nextLine returns a channel that delivers the helper's next output line,
// or is closed without one when the output ends.
func (h *helper) nextLine() <-chan string {
	line := make(chan string, 1)
	go func() {
		if h.lines.Scan() {
			line <- h.lines.Text()
		}
		close(line)
	}()
	return line
}

// wait waits for the helper to exit and fails the test if it fails.
func (h *helper) wait(t *testing.T) {
	t.Helper()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper %s: %v", h.name, err)
	}
}

// needCap skips the test unless the process has capability c in its
// effective set.
func needCap(t testing.TB, c int) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatalf("capget: %v", err)
	}
	if data[c/32].Effective&(1<<(c%32)) == 0 {
		t.Skipf("skipping: needs %s", capNames[c])
	}
}

var capNames = map[int]string{unix.CAP_SYS_PTRACE: "CAP_SYS_PTRACE"}
