package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Options configure Restore.
type Options struct {
	// Logf receives one line per restore step; nil discards them.
	Logf func(format string, args ...any)
}

// Stats describe a finished restore.
type Stats struct {
	Processes int
	Threads   int
	Pages     uint64 // bytes of page contents written
	Total     time.Duration
}

// procRoot is the proc mount that Restore reads and writes process state through.
const procRoot = "/proc"

// restorer holds the state of one restore.
type restorer struct {
	opts  Options
	t     *ptrace.Tracer
	base  uint64 // address of the stub in every process
	procs []*snapshot.Process
	files map[uint64]*snapshot.File
	pipes map[uint64]*snapshot.Pipe

	stub     *exec.Cmd
	created  []int                        // pids created so far, parents first
	open     map[uint64]*fdFile           // File.ID to the restorer's open file description
	pipeEnds map[uint64][2]*fdFile        // Pipe.ID to the restorer's read and write ends
	mapped   map[snapshot.FileRef]*fdFile // files that VMAs map
	pidfds   map[int]uintptr              // pid to the tracee's pidfd of the restorer
	mems     map[int32]*os.File           // pid to its /proc/PID/mem
	objs     *objectState                 // shared memory, FIFOs and epoll lists; see objects
	vdso     *vdsoSwitch                  // plan for reaching the running kernel's vDSO
	stats    Stats
}

// Restore reads a snapshot stream from r and recreates its processes.
// It returns when every process runs. On error it kills every task it
// created.
func Restore(r io.Reader, opts Options) (Stats, error) {
	start := time.Now()
	rd, err := snapshot.NewReader(r, snapshot.ReaderOptions{})
	if err != nil {
		return Stats{}, fmt.Errorf("read snapshot: %w", err)
	}
	defer rd.Close()
	if err := checkMeta(rd.Meta()); err != nil {
		return Stats{}, err
	}
	vs, err := newVDSOSwitch(rd.Meta())
	if err != nil {
		return Stats{}, err
	}
	rs := &restorer{opts: opts, files: map[uint64]*snapshot.File{}, pipes: map[uint64]*snapshot.Pipe{},
		open: map[uint64]*fdFile{}, pipeEnds: map[uint64][2]*fdFile{}, mapped: map[snapshot.FileRef]*fdFile{},
		pidfds: map[int]uintptr{}, mems: map[int32]*os.File{}, vdso: vs}
	rs.logf("snapshot of kernel %s on kernel %s: %s", rd.Meta().KernelRelease, runningRelease(), vs.describe())
	defer rs.closeFiles()
	if err := rs.run(rd); err != nil {
		rs.abort()
		return rs.stats, err
	}
	rs.stats.Total = time.Since(start)
	return rs.stats, nil
}

// checkMeta rejects a snapshot of another architecture or page size. A
// snapshot of another kernel release is accepted: newVDSOSwitch decides
// whether its vDSO can be served.
//
// Limitation: the xstate (FPU and vector registers) is restored in its
// saved layout. That is right while both kernels run on the same CPU and
// enable the same xfeatures. A kernel that enables other xfeatures would
// need the saved XSAVE area translated through its header.
func checkMeta(m snapshot.Meta) error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("read machine: %w", err)
	}
	if mach := unix.ByteSliceToString(uts.Machine[:]); mach != m.Machine {
		return fmt.Errorf("snapshot taken on a %s machine, running on %s", m.Machine, mach)
	}
	if m.PageSize != uint32(os.Getpagesize()) {
		return fmt.Errorf("snapshot page size %d, want %d", m.PageSize, os.Getpagesize())
	}
	return nil
}

// run reads the records, builds the tasks when the first page section
// (or the end) arrives, writes the pages and finishes the tasks.
func (rs *restorer) run(rd *snapshot.Reader) error {
	built := false
	for {
		sec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if sec.Type == snapshot.SectionPages && !built {
			if err := rs.build(); err != nil {
				return err
			}
			built = true
		}
		if err := rs.take(sec); err != nil {
			return err
		}
	}
	if !built {
		if err := rs.build(); err != nil {
			return err
		}
	}
	return rs.finish()
}

// take records one section, or writes its pages.
func (rs *restorer) take(sec *snapshot.Section) error {
	switch sec.Type {
	case snapshot.SectionFile:
		f, err := sec.File()
		if err != nil {
			return err
		}
		rs.files[f.ID] = f
	case snapshot.SectionPipe:
		p, err := sec.Pipe()
		if err != nil {
			return err
		}
		rs.pipes[p.ID] = p
	case snapshot.SectionSharedMemory:
		s, err := sec.SharedMemory()
		if err != nil {
			return err
		}
		rs.objects().shms[s.ID] = s
	case snapshot.SectionProcess:
		p, err := sec.Process()
		if err != nil {
			return err
		}
		rs.procs = append(rs.procs, p)
	case snapshot.SectionPages:
		return rs.writePages(sec)
	default:
		return fmt.Errorf("snapshot section %v at offset %d is not supported yet", sec.Type, sec.Offset)
	}
	return nil
}

// build creates every task and rebuilds every address space, ready for
// the page contents.
func (rs *restorer) build() error {
	if len(rs.procs) == 0 {
		return errors.New("snapshot holds no process")
	}
	if err := rs.checkFree(); err != nil {
		return err
	}
	var err error
	if rs.base, err = stubBase(rs.procs); err != nil {
		return err
	}
	rs.t = ptrace.NewTracer()
	if err := rs.startStub(); err != nil {
		return err
	}
	if err := rs.createTasks(); err != nil {
		return err
	}
	if err := rs.buryZombies(); err != nil {
		return err
	}
	if err := rs.stopStub(); err != nil {
		return err
	}
	for _, p := range rs.procs {
		if err := rs.buildMM(p); err != nil {
			return fmt.Errorf("rebuild memory of process %d: %w", p.PID, err)
		}
	}
	return nil
}

// finish installs files and thread state, removes the stub and lets
// every task run.
func (rs *restorer) finish() error {
	if err := rs.finishObjects(); err != nil {
		return err
	}
	for _, p := range rs.procs {
		if err := rs.finishProcess(p); err != nil {
			return fmt.Errorf("restore process %d: %w", p.PID, err)
		}
	}
	for _, p := range rs.procs {
		if err := rs.finishSignals(p); err != nil {
			return fmt.Errorf("restore signals and timers of process %d: %w", p.PID, err)
		}
		if err := rs.finishIdentity(p); err != nil {
			return fmt.Errorf("restore identity of process %d: %w", p.PID, err)
		}
	}
	for _, p := range rs.procs {
		if err := rs.dropStub(p); err != nil {
			return err
		}
	}
	for _, p := range rs.procs {
		if err := rs.unblockAll(p); err != nil {
			return fmt.Errorf("restore process %d: %w", p.PID, err)
		}
	}
	rs.logf("resume %d processes", len(rs.procs))
	// Close detaches every task from its interrupt-stop: all resume now.
	err := rs.t.Close()
	rs.t = nil
	if err != nil {
		return fmt.Errorf("resume restored tasks: %w", err)
	}
	return nil
}

// checkFree rejects the restore when a PID or TID of the snapshot is in
// use, before anything is created.
func (rs *restorer) checkFree() error {
	for _, p := range rs.procs {
		if p.State == snapshot.StateZombie {
			if _, err := os.Stat(fmt.Sprintf("%s/%d", procRoot, p.PID)); err == nil {
				return fmt.Errorf("restore zombie %d: id in use", p.PID)
			}
			continue
		}
		if p.MM == nil {
			return fmt.Errorf("process %d: snapshot has no memory map for a live process", p.PID)
		}
		for _, th := range p.Threads {
			if _, err := os.Stat(fmt.Sprintf("%s/%d", procRoot, th.TID)); err == nil {
				return fmt.Errorf("restore thread %d of process %d: id in use", th.TID, p.PID)
			}
		}
	}
	return nil
}

// abort kills every task the restore created and the stub.
func (rs *restorer) abort() {
	for i := len(rs.created) - 1; i >= 0; i-- {
		unix.Kill(rs.created[i], unix.SIGKILL)
	}
	if rs.t != nil {
		rs.t.Close()
	}
	if rs.stub != nil && rs.stub.Process != nil {
		rs.stub.Process.Kill()
		rs.stub.Wait()
	}
	// Reap the roots, which are the restorer's children.
	for _, pid := range rs.created {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil) // ECHILD for tasks that are not children
	}
}

func (rs *restorer) closeFiles() {
	for _, f := range rs.open {
		f.Close()
	}
	for _, ends := range rs.pipeEnds {
		ends[0].Close()
		ends[1].Close()
	}
	for _, f := range rs.mapped {
		f.Close()
	}
	for _, f := range rs.mems {
		f.Close()
	}
	rs.objs.close()
}

func (rs *restorer) logf(format string, args ...any) {
	if rs.opts.Logf != nil {
		rs.opts.Logf(format, args...)
	}
}
