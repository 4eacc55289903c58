package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ksu-project/ksu/pkg/procfs"
	"golang.org/x/sys/unix"
)

// newTracer returns a Tracer that the test closes at its end.
func newTracer(t testing.TB) *Tracer {
	t.Helper()
	tr := NewTracer(WithWaitTimeout(5 * time.Second))
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// readyTid starts helper name and returns it with the thread id it
// prints.
func readyTid(t testing.TB, name string) (*helper, int) {
	t.Helper()
	h := startHelper(t, name)
	tid, err := strconv.Atoi(h.expect(t, "READY ", 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return h, tid
}

// threadState returns the state letter of thread tid from /proc.
func threadState(t *testing.T, tid int) byte {
	t.Helper()
	st, err := procfs.ReadStat("/proc", tid)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

// readCounter reads the spin helper's counter.
func readCounter(t *testing.T, pid int, addr uintptr) uint64 {
	t.Helper()
	buf := make([]byte, 8)
	if _, err := ReadMemory(pid, addr, buf); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(buf)
}

// waitCounterAbove polls the counter until it exceeds floor.
func waitCounterAbove(t *testing.T, pid int, addr uintptr, floor uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for readCounter(t, pid, addr) <= floor {
		if time.Now().After(deadline) {
			t.Fatalf("counter of process %d stayed at %d for 5s", pid, floor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIntegrationSeizeInterruptResume(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h := startHelper(t, "spin")
	addr, err := strconv.ParseUint(h.expect(t, "READY ", 10*time.Second), 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	pid := h.cmd.Process.Pid
	tr := newTracer(t)

	tids, err := tr.SeizeProcess(pid, 0)
	if err != nil {
		t.Fatalf("SeizeProcess(%d) = %v", pid, err)
	}
	if len(tids) < spinThreads+1 {
		t.Fatalf("SeizeProcess(%d) = %v, want at least %d threads", pid, tids, spinThreads+1)
	}
	if err := tr.InterruptProcess(pid); err != nil {
		t.Fatalf("InterruptProcess(%d) = %v", pid, err)
	}
	for _, tid := range tids {
		if got := threadState(t, tid); got != 't' {
			t.Errorf("state of thread %d = %c, want t (tracing stop)", tid, got)
		}
	}
	frozen := readCounter(t, pid, uintptr(addr))
	time.Sleep(50 * time.Millisecond)
	if got := readCounter(t, pid, uintptr(addr)); got != frozen {
		t.Errorf("counter moved from %d to %d while every thread was stopped", frozen, got)
	}

	if err := tr.ResumeProcess(pid); err != nil {
		t.Fatalf("ResumeProcess(%d) = %v", pid, err)
	}
	waitCounterAbove(t, pid, uintptr(addr), frozen)

	if err := tr.DetachProcess(pid); err != nil {
		t.Fatalf("DetachProcess(%d) = %v", pid, err)
	}
	if got := tr.Threads(pid); len(got) != 0 {
		t.Errorf("Threads(%d) after detach = %v, want none", pid, got)
	}
	after := readCounter(t, pid, uintptr(addr))
	waitCounterAbove(t, pid, uintptr(addr), after)
	h.stdin.Close()
	h.wait(t)
}

func TestIntegrationGroupStopKept(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h := startHelper(t, "spin")
	addr, err := strconv.ParseUint(h.expect(t, "READY ", 10*time.Second), 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	pid := h.cmd.Process.Pid
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for threadState(t, pid) != 'T' && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	tr := newTracer(t)
	tids, err := tr.SeizeProcess(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		stop, err := tr.Interrupt(tid)
		if err != nil || stop.Kind != StopGroup || stop.Signal != unix.SIGSTOP {
			t.Errorf("Interrupt(%d) of a stopped process = %v, %v, want a group-stop by SIGSTOP", tid, stop, err)
		}
	}
	if _, err := tr.Syscall(pid, unix.SYS_GETPID); err != nil {
		t.Fatal(err)
	}

	// Resuming and detaching must both leave the process stopped, even
	// the thread that ran a call.
	frozen := readCounter(t, pid, uintptr(addr))
	if err := tr.ResumeProcess(pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if err := tr.DetachProcess(pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if got := readCounter(t, pid, uintptr(addr)); got != frozen {
		t.Errorf("counter of the stopped process moved from %d to %d", frozen, got)
	}
	for _, tid := range tids {
		if got := threadState(t, tid); got != 'T' {
			t.Errorf("state of thread %d after detach = %c, want T (stopped)", tid, got)
		}
	}

	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitCounterAbove(t, pid, uintptr(addr), frozen)
	h.stdin.Close()
	h.wait(t)
}

func TestIntegrationRegsRoundTrip(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "compute")
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}

	orig, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Cs != userCS64 {
		t.Errorf("GetRegs(%d).Cs = %#x, want %#x", tid, orig.Cs, userCS64)
	}
	if orig.Fs_base == 0 {
		t.Errorf("GetRegs(%d).Fs_base = 0, want the Go runtime's TLS base", tid)
	}
	marked := orig
	marked.R12 ^= 0x5a5a5a5a
	if err := tr.SetRegs(tid, marked); err != nil {
		t.Fatal(err)
	}
	got, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(marked, got); diff != "" {
		t.Errorf("GetRegs after SetRegs mismatch (-want +got):\n%s", diff)
	}
	if err := tr.SetRegs(tid, orig); err != nil {
		t.Fatal(err)
	}

	xstate, err := tr.GetXState(tid)
	if err != nil {
		t.Fatal(err)
	}
	if len(xstate) < 576 {
		t.Errorf("len(GetXState(%d)) = %d, want at least 576 (FXSAVE area and XSAVE header)", tid, len(xstate))
	}
	if err := tr.SetXState(tid, xstate); err != nil {
		t.Fatal(err)
	}
	again, err := tr.GetXState(tid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(xstate, again) {
		t.Errorf("GetXState after SetXState differs")
	}

	mask, err := tr.GetSigmask(tid)
	if err != nil {
		t.Fatal(err)
	}
	usr2 := uint64(1) << (unix.SIGUSR2 - 1)
	if err := tr.SetSigmask(tid, mask|usr2); err != nil {
		t.Fatal(err)
	}
	if got, err := tr.GetSigmask(tid); err != nil || got != mask|usr2 {
		t.Errorf("GetSigmask(%d) = %#x, %v, want %#x", tid, got, err, mask|usr2)
	}
	if err := tr.SetSigmask(tid, mask); err != nil {
		t.Fatal(err)
	}

	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}
	checkComputeResult(t, h, 0)
}

// checkComputeResult waits for the compute helper's result and compares
// it with the same computation done here.
func checkComputeResult(t *testing.T, h *helper, usr1 int) {
	t.Helper()
	want := fmt.Sprintf("%d USR1 %d", compute(computeRounds), usr1)
	if got := h.expect(t, "RESULT ", 60*time.Second); got != want {
		t.Errorf("helper result = %q, want %q", got, want)
	}
	h.wait(t)
}

func TestIntegrationSyscallGetpid(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "compute")
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}

	before, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := tr.Syscall(tid, unix.SYS_GETPID)
	if err != nil {
		t.Fatalf("Syscall(%d, getpid) = %v", tid, err)
	}
	if int(pid) != h.cmd.Process.Pid {
		t.Errorf("Syscall(%d, getpid) = %d, want %d", tid, pid, h.cmd.Process.Pid)
	}
	after, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("registers after Syscall mismatch (-want +got):\n%s", diff)
	}
	if err := tr.SetOptions(tid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		t.Errorf("SetOptions(%d, PTRACE_O_TRACESYSGOOD) = %v", tid, err)
	}
	if _, err := tr.Syscall(tid, unix.SYS_CLOSE, ^uintptr(0)); !errors.Is(err, unix.EBADF) {
		t.Errorf("Syscall(%d, close, -1) = %v, want EBADF", tid, err)
	}

	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}
	checkComputeResult(t, h, 0)
}

func TestIntegrationSyscallMmap(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	for _, tt := range []struct {
		name  string
		patch bool
	}{
		{"vdso site", false},
		{"patched site", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, tid := readyTid(t, "compute")
			pid := h.cmd.Process.Pid
			tr := newTracer(t)
			tr.forcePatch = tt.patch
			// The patched instruction lies in code that the runtime's
			// other threads may run too, so every thread stops.
			if _, err := tr.SeizeProcess(pid, 0); err != nil {
				t.Fatal(err)
			}
			// Stop the computation several times, so that the calls
			// land on different instructions and registers.
			for i := range 5 {
				if err := tr.InterruptProcess(pid); err != nil {
					t.Fatal(err)
				}
				checkMmapRound(t, tr, pid, tid)
				if err := tr.ResumeProcess(pid); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
			}
			_, cached := tr.sites[pid]
			if cached == tt.patch {
				t.Errorf("syscall site cached = %v, want %v", cached, !tt.patch)
			}
			if err := tr.DetachProcess(pid); err != nil {
				t.Fatal(err)
			}
			checkComputeResult(t, h, 0)
		})
	}
}

// checkMmapRound interrupts tid, maps a page into it with an injected
// mmap, checks the page in maps and in memory, unmaps it and checks that
// registers and the code at rip are as before.
func checkMmapRound(t *testing.T, tr *Tracer, pid, tid int) {
	t.Helper()
	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}
	regs, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	code := make([]byte, 16)
	if err := tr.PeekData(tid, uintptr(regs.Rip), code); err != nil {
		t.Fatal(err)
	}

	addr, err := tr.Syscall(tid, unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		t.Fatalf("Syscall(%d, mmap) = %v", tid, err)
	}
	if m, ok := findMapping(t, pid, addr); !ok || !m.Perms.Read || !m.Perms.Write || m.Perms.Shared || m.End < uint64(addr)+4096 {
		t.Errorf("maps of process %d has %+v at %#x after the injected mmap, want a private rw mapping of at least a page", pid, m, addr)
	}
	msg := []byte("written by the tracer")
	if _, err := WriteMemory(pid, addr, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if err := tr.PeekData(tid, addr, got); err != nil || string(got) != string(msg) {
		t.Errorf("PeekData(%#x) = %q, %v, want %q", addr, got, err, msg)
	}
	if _, err := tr.Syscall(tid, unix.SYS_MUNMAP, addr, 4096); err != nil {
		t.Fatalf("Syscall(%d, munmap) = %v", tid, err)
	}
	if m, ok := findMapping(t, pid, addr); ok {
		t.Errorf("maps of process %d has %+v at %#x after the injected munmap, want none", pid, m, addr)
	}

	after, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(regs, after); diff != "" {
		t.Errorf("registers after injected calls mismatch (-want +got):\n%s", diff)
	}
	codeAfter := make([]byte, len(code))
	if err := tr.PeekData(tid, uintptr(regs.Rip), codeAfter); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(code, codeAfter) {
		t.Errorf("code at rip %#x = % x after injected calls, want % x", regs.Rip, codeAfter, code)
	}
}

// findMapping returns the mapping of process pid that contains addr. An
// injected mapping may have merged with a neighbour, so it need not
// start at addr.
func findMapping(t *testing.T, pid int, addr uintptr) (procfs.Mapping, bool) {
	t.Helper()
	maps, err := procfs.ReadMaps("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Start <= uint64(addr) && uint64(addr) < m.End {
			return m, true
		}
	}
	return procfs.Mapping{}, false
}

func TestIntegrationSyscallSiteFaults(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "compute")
	pid := h.cmd.Process.Pid
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}

	// A syscall instruction on a page without PROT_EXEC faults when
	// the thread jumps to it.
	page, err := tr.Syscall(tid, unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteMemory(pid, page, syscallInsn); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetSyscallSite(pid, page); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Syscall(tid, unix.SYS_GETPID); err == nil {
		t.Errorf("Syscall(%d, getpid) at a non-executable site = nil error, want a fault", tid)
	}

	// The tracer drops the site, and the process never receives the
	// fault.
	got, err := tr.Syscall(tid, unix.SYS_GETPID)
	if err != nil || int(got) != pid {
		t.Errorf("Syscall(%d, getpid) after the fault = %d, %v, want %d", tid, got, err, pid)
	}
	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}
	checkComputeResult(t, h, 0)
}

func TestIntegrationSyscallPendingSignal(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "compute")
	pid := h.cmd.Process.Pid
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}

	if err := unix.Tgkill(pid, tid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	pending, err := tr.PendingSignals(tid, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Signo != int32(unix.SIGUSR1) {
		t.Errorf("PendingSignals(%d) = %+v, want one SIGUSR1", tid, pending)
	}

	// The thread takes SIGUSR1 before the injected call runs: the call
	// must still return the right value, and the signal must reach the
	// helper's handler once it is resumed.
	got, err := tr.Syscall(tid, unix.SYS_GETTID)
	if err != nil || int(got) != tid {
		t.Errorf("Syscall(%d, gettid) = %d, %v, want %d", tid, got, err, tid)
	}

	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}
	checkComputeResult(t, h, 1)
}

func TestIntegrationRestartRead(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "read")
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	waitInSyscall(t, tid, unix.SYS_READ)

	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}
	regs, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	if got := regs.Restart(); got != RestartSys {
		t.Errorf("Restart() = %v, want %v (rax %#x, orig_rax %d)", got, RestartSys, regs.Rax, int64(regs.Orig_rax))
	}
	if regs.Orig_rax != unix.SYS_READ {
		t.Errorf("Orig_rax = %d, want %d (read)", regs.Orig_rax, unix.SYS_READ)
	}

	restarted := regs.Restarted()
	insn := make([]byte, 2)
	if err := tr.PeekData(tid, uintptr(restarted.Rip), insn); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(insn, syscallInsn) || restarted.Rax != unix.SYS_READ {
		t.Errorf("Restarted() rip %#x holds % x, rax %d; want the syscall instruction and read", restarted.Rip, insn, restarted.Rax)
	}

	// An injected call in between must not disturb the restart.
	if _, err := tr.Syscall(tid, unix.SYS_GETPID); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}

	if _, err := h.stdin.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got := h.expect(t, "READ ", 10*time.Second); got != `"ping"` {
		t.Errorf("helper read %s, want \"ping\"", got)
	}
	h.wait(t)
}

// waitInSyscall waits until thread tid blocks in system call nr, as
// /proc/TID/syscall reports it.
func waitInSyscall(t *testing.T, tid int, nr int) {
	t.Helper()
	want := strconv.Itoa(nr) + " "
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", tid))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d is not in system call %d after 5s: /proc/%d/syscall = %q", tid, nr, tid, data)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestIntegrationSigmaskInPselect(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "pselect")
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	waitInSyscall(t, tid, unix.SYS_PSELECT6)

	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}
	regs, err := tr.GetRegs(tid)
	if err != nil {
		t.Fatal(err)
	}
	if got := regs.Restart(); got != RestartNoHand {
		t.Errorf("Restart() in pselect6 = %v, want %v", got, RestartNoHand)
	}

	usr2, winch := sigbit(unix.SIGUSR2), sigbit(unix.SIGWINCH)
	// The kernel reports the thread's own mask, not pselect6's
	// temporary one, before and after an injected call.
	for _, when := range []string{"before", "after"} {
		if mask, err := tr.GetSigmask(tid); err != nil || mask&(usr2|winch) != usr2 {
			t.Errorf("GetSigmask(%d) %s a call = %#x, %v, want SIGUSR2 without SIGWINCH", tid, when, mask, err)
		}
		if _, err := tr.Syscall(tid, unix.SYS_GETPID); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}

	// The restarted pselect6 must still wait, and restore the thread's own
	// mask when SIGUSR1 ends it.
	waitInSyscall(t, tid, unix.SYS_PSELECT6)
	if err := unix.Tgkill(h.cmd.Process.Pid, tid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	mask, err := strconv.ParseUint(h.expect(t, "MASK ", 10*time.Second), 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	if mask&(usr2|winch) != usr2 {
		t.Errorf("helper mask after pselect6 = %#x, want SIGUSR2 blocked and SIGWINCH not", mask)
	}
	h.wait(t)
}

func TestIntegrationRseqConfiguration(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	h, tid := readyTid(t, "compute")
	tr := newTracer(t)
	if err := tr.Seize(tid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(tid); err != nil {
		t.Fatal(err)
	}
	if conf, err := tr.GetRseqConfiguration(tid); err != nil || conf.AbiPointer != 0 {
		t.Fatalf("GetRseqConfiguration(%d) = %+v, %v, want none registered by the Go helper", tid, conf, err)
	}

	area, err := tr.Syscall(tid, unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	const rseqLen, rseqSig, rseqUnregister = 32, 0x53053053, 1
	if _, err := tr.Syscall(tid, unix.SYS_RSEQ, area, rseqLen, 0, rseqSig); err != nil {
		t.Fatalf("Syscall(%d, rseq register) = %v", tid, err)
	}

	want := RseqConfiguration{AbiPointer: uint64(area), AbiSize: rseqLen, Signature: rseqSig}
	conf, err := tr.GetRseqConfiguration(tid)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, conf); diff != "" {
		t.Errorf("GetRseqConfiguration(%d) mismatch (-want +got):\n%s", tid, diff)
	}

	if _, err := tr.Syscall(tid, unix.SYS_RSEQ, area, rseqLen, rseqUnregister, rseqSig); err != nil {
		t.Fatalf("Syscall(%d, rseq unregister) = %v", tid, err)
	}
	if _, err := tr.Syscall(tid, unix.SYS_MUNMAP, area, 4096); err != nil {
		t.Fatal(err)
	}

	info, err := tr.GetSyscallInfo(tid)
	if err != nil || info.Op != unix.PTRACE_SYSCALL_INFO_NONE {
		t.Errorf("GetSyscallInfo(%d) at an interrupt-stop = op %d, %v, want PTRACE_SYSCALL_INFO_NONE", tid, info.Op, err)
	}
	if err := tr.Detach(tid); err != nil {
		t.Fatal(err)
	}
	checkComputeResult(t, h, 0)
}

func TestIntegrationTracerDies(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	tracee, _ := readyTid(t, "compute")
	pid := tracee.cmd.Process.Pid
	tracer := startHelper(t, "tracer", "KSU_TEST_TRACEE="+strconv.Itoa(pid))
	tracer.expect(t, "STOPPED", 10*time.Second)
	if got := threadState(t, pid); got != 't' {
		t.Errorf("state of tracee %d = %c, want t (tracing stop)", pid, got)
	}
	if err := tracer.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := tracer.cmd.Wait(); err == nil {
		t.Errorf("killed tracer exited cleanly")
	}
	checkComputeResult(t, tracee, 0)
}

func TestSyscallNotStopped(t *testing.T) {
	tr := newTracer(t)
	if _, err := tr.Syscall(os.Getpid(), unix.SYS_GETPID); err == nil {
		t.Errorf("Syscall on a thread not attached = nil error, want an error")
	}
	if _, err := tr.Syscall(1, unix.SYS_GETPID, 1, 2, 3, 4, 5, 6, 7); err == nil {
		t.Errorf("Syscall with 7 arguments = nil error, want an error")
	}
}

// BenchmarkIntegrationSyscall measures one injected getpid into a thread
// that sleeps in read.
func BenchmarkIntegrationSyscall(b *testing.B) {
	needCap(b, unix.CAP_SYS_PTRACE)
	_, tid := readyTid(b, "read")
	tr := newTracer(b)
	if err := tr.Seize(tid, 0); err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Interrupt(tid); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tr.Syscall(tid, unix.SYS_GETPID); err != nil {
			b.Fatal(err)
		}
	}
}
