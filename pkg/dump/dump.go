package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/netconf"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/timens"
)

// Exit is the fate of the dumped processes after a successful dump.
type Exit int

const (
	ExitStopped Exit = iota // leave them stopped by SIGSTOP
	ExitRunning             // let them run on
	ExitKill                // kill them with SIGKILL
	// ExitTraced leaves them stopped by SIGSTOP and still traced, until
	// Stats.Traced detaches them. A SIGCONT sent before the detach
	// withdraws the SIGSTOP before it stops anyone, so a shell outside
	// the trees gets no stop report (SIGCHLD) for its foreground job.
	ExitTraced
)

// Options configure Dump.
type Options struct {
	// PIDs are the roots of the trees to dump; their descendants are
	// dumped with them.
	PIDs []int
	Exit Exit
	// Producer names the program that writes the snapshot, for Meta.
	Producer string
	// Writer sets the zstd level and concurrency of the snapshot stream.
	Writer snapshot.WriterOptions
	// Journal, if not nil, learns about every call the dump injects, so
	// that a watchdog can undo one that the dumper's death interrupts
	// (ptrace.Undo).
	Journal ptrace.Journal
	// Progress, if not nil, is called after each chunk of page contents
	// with the bytes of page contents written so far, from the goroutine
	// that called Dump. It must return quickly, because the processes are
	// frozen meanwhile.
	Progress func(pageBytes uint64)
}

// Stats describe a finished dump.
type Stats struct {
	Processes int
	Threads   int
	Pages     uint64 // bytes of page contents written
	Size      uint64 // length of the decompressed snapshot stream
	Freeze    time.Duration
	Total     time.Duration
	// Traced keeps the processes traced after a dump with ExitTraced.
	Traced *Traced
}

// Traced is the tracer of a dump with ExitTraced, which keeps the dumped
// processes in their ptrace stops with a SIGSTOP pending.
type Traced struct {
	t *ptrace.Tracer
}

// Detach lets the processes go. Those still with their SIGSTOP pending
// stop, and those that got a SIGCONT since run on. Detach on a nil
// Traced does nothing.
func (tr *Traced) Detach() error {
	if tr == nil {
		return nil
	}
	if err := tr.t.Close(); err != nil {
		return fmt.Errorf("detach the dumped processes: %w", err)
	}
	return nil
}

// procRoot is the proc mount that Dump reads process state from.
const procRoot = "/proc"

// ErrLeftStopped is joined to the error of a failed Dump that left
// processes stopped. Dump does so when it cannot take a TCP connection
// out of repair mode, because a process that ran would fail every read
// and write on such a connection and reset it. It also does so when it
// fails to stop a process after the snapshot is written. The caller
// frees what memory it can, calls ReleaseConnections and then sends the
// processes SIGCONT. With ExitTraced it detaches Stats.Traced after that.
var ErrLeftStopped = errors.New("the dumped processes stay stopped until their TCP connections leave repair mode and they get SIGCONT")

// Dump writes a snapshot of the trees rooted at opts.PIDs to w.
func Dump(w io.Writer, opts Options) (stats Stats, err error) {
	start := time.Now()
	if len(opts.PIDs) == 0 {
		return Stats{}, errors.New("dump: no process given")
	}
	t := ptrace.NewTracer(ptrace.WithJournal(opts.Journal))
	h := newHold()
	ok := false
	defer func() {
		if ok {
			return
		}
		if errors.Is(err, errStillRepaired) {
			err = errors.Join(err, ErrLeftStopped)
			if opts.Exit == ExitTraced {
				// The caller's SIGCONT must come before the detach.
				stats.Traced = &Traced{t: t}
				return
			}
			t.Close()
			return
		}
		// Until the kexec, frozen processes always resume.
		_ = h.release()
		t.Close()
	}()
	pids, err := freeze(t, opts.PIDs, h)
	if err != nil {
		return Stats{}, err
	}
	stats = Stats{Processes: len(pids), Freeze: time.Since(start)}
	live, zombies, err := splitZombies(pids, opts.PIDs)
	if err != nil {
		return stats, err
	}
	procs, err := collect(t, live, opts.Exit, h)
	if err != nil {
		return stats, err
	}
	for _, pid := range zombies {
		p, err := recordZombie(pid)
		if err != nil {
			return stats, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		stats.Threads += len(p.proc.Threads)
	}
	stats.Pages, stats.Size, err = write(w, procs, opts)
	if err != nil || opts.Exit == ExitRunning {
		// Connections of processes that run on leave repair mode and
		// get their packets back.
		err = errors.Join(err, procs[0].files.releaseTCP())
	}
	if err != nil {
		return stats, err
	}
	ok = true
	if err := finish(t, pids, opts.Exit, h); err != nil {
		return stats, err
	}
	if opts.Exit == ExitTraced {
		stats.Traced = &Traced{t: t}
	}
	stats.Total = time.Since(start)
	return stats, nil
}

// write writes the snapshot stream: Meta, records, then page contents.
// It returns the bytes of page contents and the stream's decompressed
// length.
func write(w io.Writer, procs []*process, opts Options) (pages, size uint64, err error) {
	sw, err := snapshot.NewWriter(w, opts.Writer)
	if err != nil {
		return 0, 0, fmt.Errorf("start snapshot: %w", err)
	}
	meta, err := readMeta(opts.Producer, livePIDs(procs))
	if err != nil {
		return 0, 0, err
	}
	if err := sw.WriteMeta(meta); err != nil {
		return 0, 0, fmt.Errorf("write meta: %w", err)
	}
	if err := writeRecords(sw, procs); err != nil {
		return 0, 0, err
	}
	var total uint64
	for _, p := range procs {
		if p.proc.MM == nil {
			continue // a zombie
		}
		n, err := writePages(sw, p, func(done uint64) {
			if opts.Progress != nil {
				opts.Progress(total + done)
			}
		})
		total += n
		if err != nil {
			return total, 0, fmt.Errorf("write pages of process %d: %w", p.pid, err)
		}
	}
	n, err := procs[0].files.objects.writeContents(sw)
	total += n
	if err != nil {
		return total, 0, err
	}
	if err := sw.Close(); err != nil {
		return total, 0, fmt.Errorf("finish snapshot: %w", err)
	}
	return total, uint64(sw.Size()), nil
}

func writeRecords(sw *snapshot.Writer, procs []*process) error {
	files := procs[0].files
	for _, pipe := range files.pipes {
		if err := sw.WritePipe(pipe); err != nil {
			return fmt.Errorf("write pipe %d: %w", pipe.ID, err)
		}
	}
	for _, f := range files.files {
		if err := sw.WriteFile(f); err != nil {
			return fmt.Errorf("write file %d: %w", f.ID, err)
		}
	}
	if err := files.objects.writeObjects(sw); err != nil {
		return err
	}
	if _, err := writePaths(sw, procs); err != nil {
		return err
	}
	for _, p := range procs {
		if err := sw.WriteProcess(p.proc); err != nil {
			return fmt.Errorf("write process %d: %w", p.pid, err)
		}
	}
	return nil
}

// finish ends the dump as exit requests, with the processes still held.
// A pending SIGSTOP stops every thread on its way out of the ptrace stop,
// before it runs any instruction, so the killed or stopped processes do
// nothing after the dump. Processes that run on get the SIGCONT that
// ends h, before the tracer detaches them. With ExitTraced, the tracer
// stays attached.
func finish(t *ptrace.Tracer, pids []int, exit Exit, h *hold) error {
	if exit != ExitRunning {
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
				t.Close()
				return errors.Join(fmt.Errorf("stop process %d: %w", pid, err), ErrLeftStopped)
			}
		}
	}
	if exit == ExitTraced {
		return nil
	}
	var err error
	if exit == ExitRunning {
		err = h.release()
	}
	err = errors.Join(err, t.Close())
	if exit == ExitKill {
		for _, pid := range pids {
			// A zombie whose parent was killed just before may already
			// be reaped by its new parent, and then it is gone as wanted.
			if kerr := unix.Kill(pid, unix.SIGKILL); kerr != nil && !errors.Is(kerr, unix.ESRCH) {
				err = errors.Join(err, fmt.Errorf("kill process %d: %w", pid, kerr))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("release dumped processes: %w", err)
	}
	return nil
}

// livePIDs returns the PIDs of procs that are not zombies.
func livePIDs(procs []*process) []int {
	var pids []int
	for _, p := range procs {
		if p.proc.MM != nil {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// readMeta reads the snapshot-wide state. Its clocks are those that the
// live processes pids read: a process that an earlier update restored
// lives in a time namespace whose offsets continue the clocks of the
// kernel before, and the next restore must continue those.
func readMeta(producer string, pids []int) (*snapshot.Meta, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("read kernel release: %w", err)
	}
	bootID, err := os.ReadFile(procRoot + "/sys/kernel/random/boot_id")
	if err != nil {
		return nil, fmt.Errorf("read boot id: %w", err)
	}
	var mono, boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return nil, fmt.Errorf("read monotonic clock: %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		return nil, fmt.Errorf("read boot-time clock: %w", err)
	}
	offsets, err := timens.Latest(procRoot, pids)
	if err != nil {
		return nil, err
	}
	image, err := readVDSO()
	if err != nil {
		return nil, err
	}
	links, routes, err := netconf.Read()
	if err != nil {
		return nil, fmt.Errorf("read network configuration: %w", err)
	}
	return &snapshot.Meta{
		KernelRelease: unix.ByteSliceToString(uts.Release[:]),
		BootID:        string(trimNewline(bootID)),
		Machine:       unix.ByteSliceToString(uts.Machine[:]),
		PageSize:      uint32(os.Getpagesize()),
		Monotonic:     time.Duration(mono.Nano()) + offsets.Monotonic,
		Boottime:      time.Duration(boot.Nano()) + offsets.Boottime,
		Time:          time.Now(),
		Hostname:      unix.ByteSliceToString(uts.Nodename[:]),
		Producer:      producer,
		VDSO:          image,
		Links:         links,
		Routes:        routes,
	}, nil
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		return b[:n-1]
	}
	return b
}
