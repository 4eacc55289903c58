package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Options configure Restore.
type Options struct {
	// Logf receives one line per restore step; nil discards them.
	Logf func(format string, args ...any)
	// AllOrNothing makes the failure of one tree fail the whole restore,
	// so that no restored process runs unless every one does. ksu-init
	// sets it when it can roll back to the old kernel, which then
	// restores every tree from the same snapshot.
	AllOrNothing bool
	// MountTmpfs, if not nil, mounts a tmpfs on dir, where the snapshot
	// has tmpfs content but no tmpfs is mounted. Without it, the trees
	// that use such content fail.
	MountTmpfs func(dir string) error
}

// Stats describe a finished restore.
type Stats struct {
	Processes int
	Threads   int
	Pages     uint64 // bytes of page contents written
	Total     time.Duration
	// Failed lists the process trees that Restore removed because one
	// of their processes could not be restored. The other trees run.
	Failed []TreeFailure
	// Resumed is set once Restore starts to let the restored tasks run.
	// Until then no restored process has run application code.
	Resumed bool
	// ConnectionsRebuilt is set once Restore starts to rebuild the
	// established TCP connections, which leave repair mode and lift the
	// packet drop. From then on, closing them sends the peer a FIN or a
	// reset.
	ConnectionsRebuilt bool
	// Paths counts the tmpfs content recreated before any task.
	Paths PathStats
}

// TreeFailure is a process tree that was not restored, and why. Every
// task of the tree that the restore had created was killed and reaped.
type TreeFailure struct {
	Root int32   // PID of the tree's root, whose parent is not in the snapshot
	Comm string  // the root's process name
	PIDs []int32 // every process of the tree
	Err  error
}

func (f TreeFailure) Error() string {
	return fmt.Sprintf("process tree %d (%s): %v", f.Root, f.Comm, f.Err)
}

func (f TreeFailure) Unwrap() error { return f.Err }

// FailpointPrefix followed by a PID names the failpoint (pkg/failpoint)
// that fails the restore of that process, and so removes its tree:
// KSU_FAILPOINT=restore-process-1234.
const FailpointPrefix = "restore-process-"

// reapTimeout bounds the wait for the tasks of a removed tree to exit.
const reapTimeout = 10 * time.Second

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
	dumpedAt time.Time                    // CLOCK_REALTIME at the dump
	roots    map[int32]int32              // pid to the pid of its tree's root
	failed   map[int32]bool               // roots of the trees removed so far
	paths    *pathState                   // tmpfs content recreated from path sections
	stats    Stats
}

// Restore reads a snapshot stream from r and recreates its processes.
// It returns when every process runs. A process that cannot be restored
// takes its whole tree (the processes below the same root) with it: the
// tree is killed, reaped and listed in Stats.Failed, and the other trees
// go on. A failure that concerns no single process, or the failure of
// the last tree, is returned as an error, after Restore has killed every
// task it created.
//
// Killed tasks whose parent was killed too are orphans. The caller should
// be a child subreaper (PR_SET_CHILD_SUBREAPER) so that Restore reaps
// them itself. Otherwise init inherits their zombies.
//
// Limitation: only the steps that work on one process at a time (its
// memory, pages, files, registers, signals and identity) remove just its
// tree. A failure while the tasks are created, or while the objects that
// processes share (sockets, shared memory) are rebuilt, still fails every
// tree. Creating each tree's tasks separately would lift the first case.
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
		pidfds: map[int]uintptr{}, mems: map[int32]*os.File{}, vdso: vs, dumpedAt: rd.Meta().Time,
		failed: map[int32]bool{}, paths: newPathState()}
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
	case snapshot.SectionPath:
		e, err := sec.Path()
		if err != nil {
			return err
		}
		rs.takePath(e)
	case snapshot.SectionPages:
		return rs.takePages(sec)
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
	if err := validate(rs.procs, rs.files, rs.pipes, rs.objects().shms); err != nil {
		return err
	}
	if err := rs.checkFree(); err != nil {
		return err
	}
	rs.mapTrees()
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
	if err := rs.finishPaths(); err != nil {
		return err
	}
	return rs.eachProcess(func(p *snapshot.Process) error {
		if err := rs.buildMM(p); err != nil {
			return fmt.Errorf("rebuild memory of process %d: %w", p.PID, err)
		}
		return nil
	})
}

// finish installs files and thread state, removes the stub and lets
// every task run.
func (rs *restorer) finish() error {
	if err := rs.finishObjects(); err != nil {
		return err
	}
	steps := []func(p *snapshot.Process) error{
		func(p *snapshot.Process) error {
			err := failpoint.Check(fmt.Sprint(FailpointPrefix, p.PID))
			if err == nil {
				err = rs.finishProcess(p)
			}
			if err != nil {
				return fmt.Errorf("restore process %d: %w", p.PID, err)
			}
			return nil
		},
		func(p *snapshot.Process) error {
			if err := rs.finishSignals(p); err != nil {
				return fmt.Errorf("restore signals and timers of process %d: %w", p.PID, err)
			}
			if err := rs.finishIdentity(p); err != nil {
				return fmt.Errorf("restore identity of process %d: %w", p.PID, err)
			}
			return nil
		},
		rs.dropStub,
		func(p *snapshot.Process) error {
			if err := rs.unblockAll(p); err != nil {
				return fmt.Errorf("restore process %d: %w", p.PID, err)
			}
			return nil
		},
	}
	for _, step := range steps {
		if err := rs.eachProcess(step); err != nil {
			return err
		}
	}
	rs.countRestored()
	rs.logf("resume %d processes", rs.stats.Processes)
	rs.stats.Resumed = true
	// Close detaches every task from its interrupt-stop: all resume now.
	err := rs.t.Close()
	rs.t = nil
	if err != nil {
		return fmt.Errorf("resume restored tasks: %w", err)
	}
	return nil
}

// takePages writes one page section, unless it belongs to a process of a
// removed tree. A process whose pages cannot be written loses its tree.
func (rs *restorer) takePages(sec *snapshot.Section) error {
	if err := validatePages(rs.procs, rs.objects().shms, sec.Pages()); err != nil {
		return err
	}
	pid := sec.Pages().PID
	if sec.Pages().ShmID != 0 {
		return rs.writePages(sec)
	}
	if rs.failed[rs.roots[pid]] {
		return nil // the reader skips the unread contents
	}
	if err := rs.writePages(sec); err != nil {
		return rs.dropTree(pid, err)
	}
	return nil
}

// mapTrees records the root of every process: its farthest ancestor in
// the snapshot, which is the process itself when its parent is not there.
func (rs *restorer) mapTrees() {
	parents := map[int32]int32{}
	for _, p := range rs.procs {
		parents[p.PID] = p.PPID
	}
	rs.roots = map[int32]int32{}
	for _, p := range rs.procs {
		root := p.PID
		// The bound stops at a cycle, which createTasks rejects.
		for range len(rs.procs) {
			parent, ok := parents[root]
			if _, inSnapshot := parents[parent]; !ok || !inSnapshot || parent == root {
				break
			}
			root = parent
		}
		rs.roots[p.PID] = root
	}
}

// eachProcess runs step on every process whose tree is still restored.
// A failing step removes the process's tree; eachProcess returns an
// error only when no tree is left, or at once with Options.AllOrNothing.
func (rs *restorer) eachProcess(step func(p *snapshot.Process) error) error {
	for _, p := range rs.procs {
		if rs.failed[rs.roots[p.PID]] {
			continue
		}
		if err := step(p); err != nil {
			if err := rs.dropTree(p.PID, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropTree removes the tree of process pid after err: it kills and reaps
// the tree's tasks and records the failure. It returns an error when no
// tree is left to restore, or with Options.AllOrNothing.
func (rs *restorer) dropTree(pid int32, err error) error {
	root, ok := rs.roots[pid]
	if !ok {
		return err // not a process of the snapshot: no tree to blame
	}
	rs.failed[root] = true
	f := TreeFailure{Root: root, Err: err}
	var tree []*snapshot.Process
	for _, p := range rs.procs {
		if rs.roots[p.PID] != root {
			continue
		}
		tree = append(tree, p)
		f.PIDs = append(f.PIDs, p.PID)
		if p.PID == root {
			f.Comm = p.Identity.Comm
		}
	}
	rs.logf("removing %v", f)
	if left := rs.killTree(tree); len(left) > 0 {
		rs.logf("process tree %d: tasks %v still present %v after SIGKILL", root, left, reapTimeout)
	}
	rs.stats.Failed = append(rs.stats.Failed, f)
	if rs.opts.AllOrNothing {
		return fmt.Errorf("restore of every tree abandoned: %w", f)
	}
	if len(rs.failed) < len(rs.rootSet()) {
		return nil
	}
	errs := make([]error, len(rs.stats.Failed))
	for i, f := range rs.stats.Failed {
		errs[i] = f
	}
	return fmt.Errorf("no process tree could be restored: %w", errors.Join(errs...))
}

// rootSet returns the roots of the snapshot's trees.
func (rs *restorer) rootSet() map[int32]bool {
	set := map[int32]bool{}
	for _, root := range rs.roots {
		set[root] = true
	}
	return set
}

// killTree sends SIGKILL to every created process of tree, stops tracing
// them and waits until their tasks are gone, which releases their PIDs
// and TIDs. Their sockets close with the last descriptor, so a TCP peer
// gets a reset or a FIN, not silence. It returns the tasks still present
// after reapTimeout.
func (rs *restorer) killTree(tree []*snapshot.Process) []int {
	var tids []int
	for _, p := range tree {
		if !slices.Contains(rs.created, int(p.PID)) {
			continue
		}
		unix.Kill(int(p.PID), unix.SIGKILL)
		tids = append(tids, int(p.PID))
		for _, th := range p.Threads {
			if th.TID != p.PID {
				tids = append(tids, int(th.TID))
			}
		}
	}
	for _, p := range tree {
		// N.B. Detaching a killed task fails with ESRCH once it left its
		// ptrace stop; either way the tracer forgets its threads.
		rs.t.DetachProcess(int(p.PID))
		if f, ok := rs.mems[p.PID]; ok {
			f.Close()
			delete(rs.mems, p.PID)
		}
		rs.created = slices.DeleteFunc(rs.created, func(pid int) bool { return pid == int(p.PID) })
	}
	return reapTasks(tids, reapTimeout)
}

// reapTasks waits for the killed tasks tids until none is left in
// /proc or timeout passes, and returns the ones left. The restorer
// collects each task as its tracer, and then as its parent: a root is
// its child, and the orphans of a killed parent come to it as their
// subreaper.
func reapTasks(tids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, tid := range tids {
			var ws unix.WaitStatus
			unix.Wait4(tid, &ws, unix.WNOHANG|unix.WALL, nil) // ECHILD once it is gone
			if _, err := os.Stat(fmt.Sprintf("%s/%d", procRoot, tid)); err == nil {
				left = append(left, tid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		tids = left
		time.Sleep(5 * time.Millisecond)
	}
}

// countRestored sets the process and thread counts to those of the trees
// that were restored.
func (rs *restorer) countRestored() {
	rs.stats.Processes, rs.stats.Threads = 0, 0
	for _, p := range rs.procs {
		if rs.failed[rs.roots[p.PID]] {
			continue
		}
		rs.stats.Processes++
		if p.State != snapshot.StateZombie {
			rs.stats.Threads += len(p.Threads)
		}
	}
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
