package dump

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// chldInfo returns the siginfo bytes of a SIGCHLD from child with code.
func chldInfo(child int, code int32) snapshot.Siginfo {
	info := make([]byte, 128)
	binary.LittleEndian.PutUint32(info, uint32(unix.SIGCHLD))
	binary.LittleEndian.PutUint32(info[siginfoCode:], uint32(code))
	binary.LittleEndian.PutUint32(info[siginfoPID:], uint32(child))
	return snapshot.Siginfo{Signal: int32(unix.SIGCHLD), Info: info}
}

func TestDropHeldSignals(t *testing.T) {
	h := newHold()
	h.sigstopped[100] = true
	h.sigstopped[101] = true
	h.jobStopped[102] = true
	const cldExited = 1
	stop := snapshot.Siginfo{Signal: int32(unix.SIGSTOP), Info: make([]byte, 128)}
	usr1 := snapshot.Siginfo{Signal: int32(unix.SIGUSR1), Info: make([]byte, 128)}
	for _, tt := range []struct {
		name  string
		pid   int
		in    []snapshot.Siginfo
		wantN int
	}{
		{"stop of a held child dropped", 100, []snapshot.Siginfo{chldInfo(101, cldStopped)}, 0},
		{"exit of a held child kept", 100, []snapshot.Siginfo{chldInfo(101, cldExited)}, 1},
		{"stop of a suspended job kept", 100, []snapshot.Siginfo{chldInfo(102, cldStopped)}, 1},
		{"own SIGSTOP dropped", 101, []snapshot.Siginfo{stop, usr1}, 1},
		{"SIGSTOP of a suspended job kept", 102, []snapshot.Siginfo{stop}, 1},
		{"short siginfo kept", 100, []snapshot.Siginfo{{Signal: int32(unix.SIGCHLD), Info: []byte{1}}}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := h.dropHeldSignals(tt.pid, tt.in)
			if len(got) != tt.wantN {
				t.Errorf("dropHeldSignals(%d, %d signals) kept %d, want %d", tt.pid, len(tt.in), len(got), tt.wantN)
			}
		})
	}
}

// TestIntegrationHoldLeavesNoSignals dumps a shell and its child with
// ExitRunning. The freeze's SIGSTOP and the SIGCHLD that the child's
// group-stop sends the shell must not reach the snapshot, and the
// hold's SIGCONT must let both processes run again.
func TestIntegrationHoldLeavesNoSignals(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	child := waitChild(t, cmd.Process.Pid)

	var buf bytes.Buffer
	if _, err := Dump(&buf, Options{PIDs: []int{cmd.Process.Pid}, Exit: ExitRunning}); err != nil {
		t.Fatalf("Dump(shell %d) = %v", cmd.Process.Pid, err)
	}
	for _, p := range readProcesses(t, buf.Bytes()) {
		pending := p.Pending
		for _, th := range p.Threads {
			pending = append(pending, th.Pending...)
		}
		for _, si := range pending {
			t.Errorf("process %d: pending signal %v in the snapshot, want none", p.PID, unix.SignalName(unix.Signal(si.Signal)))
		}
	}
	waitState(t, cmd.Process.Pid, 'S')
	waitState(t, child, 'S')
}

// readProcesses decodes the process records of snapshot stream data.
func readProcesses(t *testing.T, data []byte) []*snapshot.Process {
	t.Helper()
	rd, err := snapshot.NewReader(bytes.NewReader(data), snapshot.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var procs []*snapshot.Process
	for {
		sec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return procs
		}
		if err != nil {
			t.Fatal(err)
		}
		if sec.Type != snapshot.SectionProcess {
			continue
		}
		p, err := sec.Process()
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
}

// waitChild waits until process pid has a child and returns it.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	for range 500 {
		pids, err := procfs.Descendants(procRoot, []int{pid}, 16)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) > 1 {
			return pids[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has no child after 5s", pid)
	return 0
}

// helperParent starts "sleep 60" with its output on /dev/null, prints
// "CHILD PID", and then prints "STOPPED" or "CONTINUED" for each stop
// or continue of the child that waitid reports to it, as a shell
// would see them, until the child exits.
func helperParent() error {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Printf("CHILD %d\n", cmd.Process.Pid)
	for range 100 {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WSTOPPED|unix.WCONTINUED|unix.WEXITED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		switch info.Code {
		case cldStopped:
			fmt.Println("STOPPED")
		case cldContinued:
			fmt.Println("CONTINUED")
		default:
			fmt.Println("EXITED")
			return nil
		}
	}
	return errors.New("more than 100 events")
}

// cldContinued is the si_code of a SIGCHLD for a child's continue.
const cldContinued = 6

// TestIntegrationHoldParentEvents dumps a child of the "parent" helper,
// resumes it as a failed update would, and lists what waitid reported to
// the parent. A child in the foreground of its terminal, whose shell
// would take the terminal back on a stop, must not stop at all, after
// ExitRunning or after ExitTraced and a SIGCONT before the detach. With
// ExitStopped it stops before the SIGCONT, which the last case shows. A
// child without a terminal is held by a group-stop, and the parent
// learns of its continue, and of its stop if it collects that before
// the hold's SIGCONT, which clears a stop not yet collected.
func TestIntegrationHoldParentEvents(t *testing.T) {
	needCap(t, unix.CAP_SYS_PTRACE)
	for _, tt := range []struct {
		name     string
		terminal bool
		exit     Exit
		want     [][]string // the events in one of these orders
	}{
		{"foreground job runs on", true, ExitRunning, [][]string{{"EXITED"}}},
		{"no terminal runs on", false, ExitRunning, [][]string{
			{"STOPPED", "CONTINUED", "EXITED"},
			{"CONTINUED", "EXITED"},
		}},
		{"foreground job traced", true, ExitTraced, [][]string{{"EXITED"}}},
		{"foreground job stopped", true, ExitStopped, [][]string{{"STOPPED", "CONTINUED", "EXITED"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines, child := startParent(t, tt.terminal)
			stats, err := Dump(io.Discard, Options{PIDs: []int{child}, Exit: tt.exit})
			if err != nil {
				t.Fatalf("Dump(%d) = %v", child, err)
			}

			var got []string
			if tt.exit == ExitStopped {
				waitState(t, child, 'T')
				// The SIGCONT below would clear the stop if the
				// parent had not collected it yet.
				got = append(got, nextEvent(t, lines))
			}
			if tt.exit != ExitRunning {
				if err := unix.Kill(child, unix.SIGCONT); err != nil {
					t.Fatal(err)
				}
			}
			if err := stats.Traced.Detach(); err != nil {
				t.Fatal(err)
			}
			waitState(t, child, 'S')

			// waitid reports a zombie before a continue that the
			// parent has not collected, so the SIGKILL waits for it.
			if slices.Contains(tt.want[0], "CONTINUED") {
				for !slices.Contains(got, "CONTINUED") && len(got) < 3 {
					got = append(got, nextEvent(t, lines))
				}
			} else {
				waitParentWaiting(t, child)
			}
			if err := unix.Kill(child, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			for line := range lines {
				got = append(got, line)
			}
			if !slices.ContainsFunc(tt.want, func(want []string) bool { return slices.Equal(want, got) }) {
				t.Errorf("events the parent saw = %q, want one of %q", got, tt.want)
			}
		})
	}
}

// nextEvent returns the next event that the parent helper prints, and
// fails the test if none comes within 5 s.
func nextEvent(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("parent helper ended its output before the expected event")
		}
		return line
	case <-time.After(5 * time.Second):
		t.Fatal("parent helper printed no event within 5s")
		return ""
	}
}

// waitParentWaiting waits until the parent of child sleeps in waitid,
// which means it has collected every event of child that woke it so far.
// The cases that expect no stop or continue call it before the SIGKILL,
// so that an unexpected event still reaches the parent first.
func waitParentWaiting(t *testing.T, child int) {
	t.Helper()
	st, err := procfs.ReadStat(procRoot, child)
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if taskSleepsIn(st.PPid, unix.SYS_WAITID) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("parent %d of process %d is not asleep in waitid after 5s", st.PPid, child)
}

// taskSleepsIn reports whether a thread of process pid sleeps in system
// call nr.
func taskSleepsIn(pid int, nr int) bool {
	tids, err := procfs.Tasks(procRoot, pid)
	if err != nil {
		return false
	}
	want := strconv.Itoa(nr) + " "
	for _, tid := range tids {
		dir := fmt.Sprintf("%s/%d/task/%d/", procRoot, pid, tid)
		call, err := os.ReadFile(dir + "syscall")
		if err != nil || !strings.HasPrefix(string(call), want) {
			continue
		}
		data, err := os.ReadFile(dir + "stat")
		if err != nil {
			continue
		}
		if st, err := procfs.ParseStat(string(data)); err == nil && st.State == 'S' {
			return true
		}
	}
	return false
}

// startParent starts the "parent" helper, on a new pseudo-terminal as
// its controlling terminal if terminal is true, and returns a channel
// of its output lines after CHILD and the child's pid.
func startParent(t *testing.T, terminal bool) (<-chan string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=parent")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if terminal {
		tty := openPTY(t)
		cmd.Stdin = tty
		cmd.SysProcAttr.Setctty = true
	}

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("parent helper printed nothing: %v", sc.Err())
	}
	child, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "CHILD "))
	if err != nil {
		t.Fatalf("parent helper printed %q, want CHILD PID", sc.Text())
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, child
}

// openPTY opens a new pseudo-terminal and returns its secondary side.
// Both sides close when the test ends.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("skipping: open /dev/ptmx: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}
