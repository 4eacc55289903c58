package dump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os/exec"
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
