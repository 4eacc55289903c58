package ptrace

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ksu-project/ksu/pkg/procfs"
	"golang.org/x/sys/unix"
)

// deathState is a point of an injected getpid at which the "deathtracer"
// helper waits to be killed.
type deathState struct {
	// step is how far the injection goes: "borrowed" (registers set in
	// an interrupt-stop), "singlestep" (the SIGTRAP
	// signal-delivery-stop after a PTRACE_SINGLESTEP over the syscall
	// instruction), "sysenter" or "sysexit" (the syscall-enter-stop or
	// syscall-exit-stop of a PTRACE_SYSCALL run).
	step string
	// sysgood sets PTRACE_O_TRACESYSGOOD.
	sysgood bool
	// unwaited leaves the last stop uncollected by wait. Collecting a
	// stop zeroes the thread's exit_code, the signal that the kernel
	// acts on when the thread leaves the stop without a tracer.
	unwaited bool
}

func (s deathState) String() string {
	name := s.step
	if s.sysgood {
		name += "-sysgood"
	}
	if s.unwaited {
		name += "-unwaited"
	}
	return name
}

var deathStates = []deathState{
	{step: "borrowed"},
	{step: "singlestep"},
	{step: "singlestep", unwaited: true},
	{step: "sysenter"},
	{step: "sysexit"},
	{step: "sysexit", unwaited: true},
	{step: "sysexit", sysgood: true, unwaited: true},
}

// helperDeathTracer seizes and interrupts every thread of process
// KSU_TEST_TRACEE, injects getpid into thread KSU_TEST_TID up to the
// state named by KSU_TEST_STATE, prints "STATE SITE SAVED" (the syscall
// instruction's address and the thread's own registers, hex-encoded) and
// waits to be killed. KSU_TEST_STOPPED=true marks a process in a
// group-stop, which PTRACE_SEIZE reports by itself.
func helperDeathTracer() error {
	pid, err := strconv.Atoi(os.Getenv("KSU_TEST_TRACEE"))
	if err != nil {
		return err
	}
	tid, err := strconv.Atoi(os.Getenv("KSU_TEST_TID"))
	if err != nil {
		return err
	}
	i := slices.IndexFunc(deathStates, func(s deathState) bool { return s.String() == os.Getenv("KSU_TEST_STATE") })
	if i < 0 {
		return fmt.Errorf("unknown state %q", os.Getenv("KSU_TEST_STATE"))
	}
	state := deathStates[i]
	options := 0
	if state.sysgood {
		options = unix.PTRACE_O_TRACESYSGOOD
	}
	t := NewTracer(WithWaitTimeout(5 * time.Second))
	if _, err := t.SeizeProcess(pid, options); err != nil {
		return err
	}
	if err := interruptSeized(t, pid, os.Getenv("KSU_TEST_STOPPED") == "true"); err != nil {
		return err
	}
	if !state.sysgood {
		// Seize always sets PTRACE_O_TRACESYSGOOD; clear it again.
		err := t.do(func() error { return unix.PtraceSetOptions(tid, 0) })
		if err != nil {
			return fmt.Errorf("clear the options of thread %d: %w", tid, err)
		}
	}
	var site uintptr
	var saved Regs
	err = t.do(func() error {
		var err error
		site, saved, err = t.injectUpTo(t.threads[tid], state)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("STATE %#x %s\n", site, encodeRegs(saved))
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// interruptSeized interrupts every thread of process pid, which t has
// just seized. stopped marks a process in a group-stop: PTRACE_SEIZE
// reports such a thread's stop by itself, and an interrupt sent while
// that trap is uncollected stays pending and traps the thread again on
// its next resume, so interruptSeized collects those traps first.
func interruptSeized(t *Tracer, pid int, stopped bool) error {
	if stopped {
		err := t.do(func() error {
			for _, th := range t.threads {
				if _, err := t.waitStop(th); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return t.InterruptProcess(pid)
}

// injectUpTo sets th's registers for getpid at a vDSO syscall
// instruction and runs the injection up to state. It returns the site and
// th's own registers.
func (t *Tracer) injectUpTo(th *thread, state deathState) (uintptr, Regs, error) {
	saved, err := getRegs(th.tid)
	if err != nil {
		return 0, Regs{}, err
	}
	site, err := t.vdsoSite(th)
	if err != nil {
		return 0, Regs{}, err
	}
	if err := setRegs(th.tid, callRegs(&saved, site, unix.SYS_GETPID, nil)); err != nil {
		return 0, Regs{}, err
	}
	trap := unix.SIGTRAP
	if state.sysgood {
		trap |= 0x80
	}
	wait := !state.unwaited
	switch state.step {
	case "singlestep":
		err = t.stepTo(th, unix.PtraceSingleStep, unix.SIGTRAP, wait)
	case "sysenter":
		err = t.stepTo(th, syscallStep, trap, wait)
	case "sysexit":
		err = t.stepTo(th, syscallStep, trap, true)
		if err == nil {
			err = t.stepTo(th, syscallStep, trap, wait)
		}
	}
	return site, saved, err
}

func syscallStep(tid int) error { return unix.PtraceSyscall(tid, 0) }

// stepTo resumes th with resume and, if wait is true, checks that wait
// reports stop signal want (SIGTRAP|0x80 for a syscall-stop under
// PTRACE_O_TRACESYSGOOD).
func (t *Tracer) stepTo(th *thread, resume func(int) error, want unix.Signal, wait bool) error {
	if err := resume(th.tid); err != nil {
		return fmt.Errorf("resume thread %d: %w", th.tid, err)
	}
	if !wait {
		return nil
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(th.tid, &ws, unix.WALL, nil); err != nil {
		return fmt.Errorf("wait for thread %d: %w", th.tid, err)
	}
	if !ws.Stopped() || ws.StopSignal() != want || ws.TrapCause() > 0 {
		return fmt.Errorf("thread %d reported status %#x, want a stop with signal %#x", th.tid, uint32(ws), int(want))
	}
	return nil
}

// encodeRegs returns regs as hex of their little-endian bytes.
func encodeRegs(regs Regs) string {
	buf, err := binary.Append(nil, binary.LittleEndian, regs)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf)
}

func decodeRegs(s string) (Regs, error) {
	buf, err := hex.DecodeString(s)
	if err != nil {
		return Regs{}, err
	}
	var regs Regs
	_, err = binary.Decode(buf, binary.LittleEndian, &regs)
	return regs, err
}

// Fates of a tracee after its tracer's death, as deathFate reports them.
const (
	// fateLeftSite is a thread that ran user code or entered a signal
	// handler after the tracer's death.
	fateLeftSite  = "left the site"
	fateAtSite    = "stopped at the site"
	fateAfterCall = "stopped after the call"
	fateCrashTrap = "crashed on SIGTRAP"
	// fateCrashOther is a Go runtime crash other than on SIGTRAP, such
	// as a fault or a corrupt stack, whichever the wrong registers lead
	// to on the kernel's vDSO. exitFate appends the exit status.
	fateCrashOther = "crashed otherwise"
	// fateExited is a process that exited with status 0. It was seen
	// once without a hold, on a loaded machine: most likely the thread
	// ran on from the borrowed registers into code that let it finish.
	fateExited = "exited normally"
	// suffixSurvives follows a stopped fate when the thread, given back
	// its registers and resumed, computes the right result.
	suffixSurvives = ", survives"
)

// deathCondition is what holds the tracee, besides the tracer, when the
// tracer dies.
type deathCondition string

const (
	condNone deathCondition = "none"
	// condPending: SIGSTOP sent while every thread is in a ptrace stop,
	// so it is pending, not yet dequeued.
	condPending deathCondition = "sigstop-pending"
	// condGroupStop: the process was stopped by SIGSTOP before the
	// tracer seized it.
	condGroupStop deathCondition = "group-stop"
	// condFrozen: the process's cgroup v2 was frozen while the thread
	// was in the ptrace stop.
	condFrozen deathCondition = "cgroup-frozen"
)

// TestIntegrationTracerDeathStates kills a tracer in each state of an
// injected getpid and checks what the kernel does to the tracee, a Go
// process. The kernel detaches the thread and wakes it (__ptrace_unlink
// in kernel/ptrace.c). Without a hold, the thread runs on from the
// borrowed registers, and after a single-step its trap flag stays set
// and raises SIGTRAP one instruction later. With a SIGSTOP pending or
// in effect (__ptrace_unlink sets JOBCTL_STOP_PENDING), or a frozen
// cgroup v2, it stops before it returns to user space, and a new tracer
// can put its registers back: detaching also clears the trap flag. The
// stop's signal matters only while no wait has collected the stop, since
// wait zeroes it: a single-step's SIGTRAP is then delivered, and a
// syscall-stop sends SIGTRAP on its way out unless
// PTRACE_O_TRACESYSGOOD made the signal SIGTRAP|0x80, which is no valid
// signal for send_sig (ptrace_report_syscall).
func TestIntegrationTracerDeathStates(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	ranOn := []string{fateCrashOther + " (exit status 2)", fateLeftSite, fateExited}
	unheld := map[string][]string{
		"borrowed":                 ranOn,
		"singlestep":               {fateCrashTrap},
		"singlestep-unwaited":      {fateCrashTrap},
		"sysenter":                 ranOn,
		"sysexit":                  ranOn,
		"sysexit-unwaited":         {fateCrashTrap},
		"sysexit-sysgood-unwaited": ranOn,
	}
	afterCall := fateAfterCall + suffixSurvives
	held := map[string][]string{
		"borrowed":   {fateAtSite + suffixSurvives},
		"singlestep": {afterCall},
		// The SIGTRAP reaches the handler (the Go runtime's, which
		// crashes), or with the default action kills the process.
		"singlestep-unwaited": {fateLeftSite, fateCrashTrap},
		"sysenter":            {afterCall},
		"sysexit":             {afterCall},
		// Under condPending, the thread may dequeue the SIGTRAP
		// before another thread dequeues the SIGSTOP and starts the
		// group-stop. The group-stop may then catch it in the Go
		// runtime's handler, before the crash.
		"sysexit-unwaited":         {fateAfterCall + ", then " + fateCrashTrap, fateCrashTrap, fateLeftSite},
		"sysexit-sysgood-unwaited": {afterCall},
	}
	for _, cond := range []deathCondition{condNone, condPending, condGroupStop, condFrozen} {
		for _, state := range deathStates {
			t.Run(string(cond)+"/"+state.String(), func(t *testing.T) {
				want := held[state.String()]
				if cond == condNone {
					want = unheld[state.String()]
				}
				if got := deathFate(t, cond, state); !slices.Contains(want, got) {
					t.Errorf("tracee fate after its tracer died in %v = %q, want one of %q", state, got, want)
				}
			})
		}
	}
}

// deathFate starts a compute helper, holds it under cond, kills a
// deathtracer in state and returns the helper's fate.
func deathFate(t *testing.T, cond deathCondition, state deathState) string {
	var cgroup string
	if cond == condFrozen {
		cgroup = makeTestCgroup(t)
	}
	var stderr bytes.Buffer
	tracee := startHelperTo(t, "compute", &stderr)
	tid, err := strconv.Atoi(tracee.expect(t, "READY ", 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pid := tracee.cmd.Process.Pid
	// A SIGTRAP or SIGSEGV kill must not leave a core file behind.
	if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil); err != nil {
		t.Fatal(err)
	}
	if cond == condGroupStop {
		stopProcess(t, pid)
	}
	tracer := startHelper(t, "deathtracer", "KSU_TEST_TRACEE="+strconv.Itoa(pid),
		"KSU_TEST_TID="+strconv.Itoa(tid), "KSU_TEST_STATE="+state.String(),
		"KSU_TEST_STOPPED="+strconv.FormatBool(cond == condGroupStop))
	site, saved := parseState(t, tracer.expect(t, "STATE ", 10*time.Second))
	if state.unwaited {
		waitTracingStop(t, tid)
	}
	switch cond {
	case condPending:
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	case condFrozen:
		freezeCgroup(t, cgroup, pid)
	}
	if err := tracer.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = tracer.cmd.Wait()
	// The kernel detached the tracee when the tracer exited. A thread
	// that runs on gets the time to crash, even on a loaded machine.
	time.Sleep(200 * time.Millisecond)
	for range 100 {
		if fate, dead := exitFate(tracee, &stderr); dead {
			first, _, _ := strings.Cut(stderr.String(), "\n")
			t.Logf("compute helper died: %s", first)
			return fate
		}
		if cond != condNone {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fate, err := restoreHeld(t, tid, site, saved, uint64(pid))
	if err != nil {
		if fate, dead := exitFate(tracee, &stderr); dead {
			return fate
		}
		t.Fatal(err)
	}
	if fate == fateLeftSite {
		return fate
	}
	releaseHeld(t, pid, cond, cgroup)
	return fate + computeOutcome(tracee, &stderr, 0)
}

// parseState decodes the deathtracer's "STATE" line.
func parseState(t *testing.T, line string) (uintptr, Regs) {
	t.Helper()
	siteText, savedText, _ := strings.Cut(line, " ")
	site, err := strconv.ParseUint(siteText, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := decodeRegs(savedText)
	if err != nil {
		t.Fatal(err)
	}
	return uintptr(site), saved
}

// restoreHeld does what a guard would: it seizes thread tid, reads
// where it is, and if it is held at the site or after the call, puts
// saved back and detaches.
func restoreHeld(t *testing.T, tid int, site uintptr, saved Regs, pid uint64) (string, error) {
	tr := newTracer(t)
	defer tr.Close()
	if err := tr.Seize(tid, 0); err != nil {
		return "", err
	}
	if _, err := tr.Interrupt(tid); err != nil {
		return "", err
	}
	regs, err := tr.GetRegs(tid)
	if err != nil {
		return "", err
	}
	var fate string
	switch {
	case regs.Rip == uint64(site) && regs.Rax == unix.SYS_GETPID:
		fate = fateAtSite
	case regs.Rip == uint64(site)+2 && regs.Rax == pid:
		fate = fateAfterCall
	default:
		t.Logf("thread %d left the site: rip %#x rax %#x, site %#x", tid, regs.Rip, regs.Rax, site)
		return fateLeftSite, nil
	}
	if err := tr.SetRegs(tid, saved); err != nil {
		return "", err
	}
	return fate, tr.Detach(tid)
}

// releaseHeld ends what cond holds the process with.
func releaseHeld(t *testing.T, pid int, cond deathCondition, cgroup string) {
	t.Helper()
	switch cond {
	case condPending, condGroupStop:
		if err := unix.Kill(pid, unix.SIGCONT); err != nil {
			t.Fatal(err)
		}
	case condFrozen:
		writeCgroupFile(t, cgroup, "cgroup.freeze", "0")
	}
}

// computeResult is compute(computeRounds), computed once.
var computeResult = sync.OnceValue(func() uint64 { return compute(computeRounds) })

// computeOutcome waits for the compute helper's result, which must
// count usr1 SIGUSR1s, and returns suffixSurvives if it is right, and
// otherwise what happened.
func computeOutcome(h *helper, stderr *bytes.Buffer, usr1 int) string {
	want := fmt.Sprintf("RESULT %d USR1 %d", computeResult(), usr1)
	select {
	case l, ok := <-h.nextLine():
		if !ok {
			// The output ends when the helper dies, which may take
			// a moment longer.
			for range 100 {
				if fate, dead := exitFate(h, stderr); dead {
					return ", then " + fate
				}
				time.Sleep(10 * time.Millisecond)
			}
			return ", then output closed"
		}
		if l != want {
			return fmt.Sprintf(", then output %q, want %q", l, want)
		}
		return suffixSurvives
	case <-time.After(60 * time.Second):
		return ", then no result within 60s"
	}
}

// exitFate reports whether helper h has died and, if so, how. It reaps
// only a zombie, so it never blocks. A Go helper catches SIGTRAP and
// faults itself and exits with status 2, so stderr, the helper's error
// output, distinguishes a SIGTRAP crash from the rest.
func exitFate(h *helper, stderr *bytes.Buffer) (string, bool) {
	st, err := procfs.ReadStat("/proc", h.cmd.Process.Pid)
	if err != nil {
		panic(fmt.Sprintf("read state of helper %d: %v", h.cmd.Process.Pid, err))
	}
	if st.State != 'Z' {
		return "", false
	}
	_ = h.cmd.Wait()
	if strings.Contains(stderr.String(), "SIGTRAP: trace trap") {
		return fateCrashTrap, true
	}
	ws := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal()), true
	}
	if ws.ExitStatus() == 0 {
		return fateExited, true
	}
	return fmt.Sprintf("%s (exit status %d)", fateCrashOther, ws.ExitStatus()), true
}

// waitTracingStop waits until thread tid is in a ptrace stop.
func waitTracingStop(t *testing.T, tid int) {
	t.Helper()
	for range 500 {
		if threadState(t, tid) == 't' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("thread %d not in a ptrace stop after 5s", tid)
}

// stopProcess sends SIGSTOP to pid and waits until every thread is
// stopped.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		tids, err := procfs.Tasks("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(tids, func(tid int) bool { return threadState(t, tid) != 'T' }) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d not stopped 5s after SIGSTOP", pid)
}

// makeTestCgroup creates a child of the cgroup v2 root and removes it
// when the test ends, after its processes are gone. It skips the test
// without a cgroup v2 hierarchy.
func makeTestCgroup(t *testing.T) string {
	t.Helper()
	mounts, err := procfs.ReadMountInfo("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mounts, func(m procfs.Mount) bool { return m.FSType == "cgroup2" && m.Root == "/" })
	if i < 0 {
		t.Skip("skipping: no cgroup2 hierarchy mounted")
	}
	dir, err := os.MkdirTemp(mounts[i].MountPoint, "ksu-ptrace-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The helpers are killed by then, but the cgroup empties only
		// once the kernel has released their tasks.
		for range 500 {
			if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("remove cgroup %s: still busy after 5s", dir)
	})
	return dir
}

// freezeCgroup moves process pid into cgroup and freezes it.
func freezeCgroup(t *testing.T, cgroup string, pid int) {
	t.Helper()
	writeCgroupFile(t, cgroup, "cgroup.procs", strconv.Itoa(pid))
	writeCgroupFile(t, cgroup, "cgroup.freeze", "1")
	for range 500 {
		events, err := os.ReadFile(filepath.Join(cgroup, "cgroup.events"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(events), "frozen 1") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("cgroup %s not frozen 5s after cgroup.freeze", cgroup)
}

func writeCgroupFile(t *testing.T, cgroup, name, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cgroup, name), []byte(value), 0); err != nil {
		t.Fatal(err)
	}
}
