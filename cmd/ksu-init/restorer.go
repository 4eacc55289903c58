package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/ksu-project/ksu/pkg/restore"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// restorerArg, as the first argument, makes /init the restorer: a child
// of PID 1 that recreates the snapshot's processes. PID 1 itself never
// takes this role, so it never traces.
const restorerArg = "ksu-restorer"

// resultFile is where the restorer leaves its restoreResult, inside the
// new root's /run (ksu-init's /run tmpfs, moved there).
const resultFile = "/run/ksu/restorer.json"

// restoreResult is what the restorer reports to PID 1.
type restoreResult struct {
	SnapshotKernel string        `json:"snapshot_kernel"`
	PIDs           []int32       `json:"pids"` // the processes of the snapshot
	Restored       bool          `json:"restored"`
	Error          string        `json:"error,omitempty"`
	Processes      int           `json:"processes"`
	Threads        int           `json:"threads"`
	Pages          uint64        `json:"page_bytes"`
	Restore        time.Duration `json:"restore_ns"` // restore.Restore, resuming included
	Clocks         clockOffsets  `json:"clocks"`
	// ResumedAt is CLOCK_REALTIME when every restored task was running.
	ResumedAt time.Time `json:"resumed_at"`
	// SnapshotAt is the snapshot's CLOCK_REALTIME stamp.
	SnapshotAt time.Time `json:"snapshot_at"`
	// Failed lists the trees that were removed while the others were
	// restored.
	Failed []failure `json:"failed,omitempty"`
	// AllOrNothing is set when a rollback was ready, so that a failed
	// tree failed the whole restore (restore.Options).
	AllOrNothing bool `json:"all_or_nothing,omitempty"`
	// Resumed and ConnectionsRebuilt are restore.Stats' fields: whether
	// restored tasks ran, and TCP connections left repair mode.
	Resumed            bool `json:"resumed,omitempty"`
	ConnectionsRebuilt bool `json:"connections_rebuilt,omitempty"`
	// Tmpfs is the tmpfs content recreated and the /tmp paths kept.
	Tmpfs *tmpfsReport `json:"tmpfs,omitempty"`
}

// init locks the main goroutine to the main thread, the thread group
// leader: the restorer unshares its time namespace there, because
// /proc/self/timens_offsets sets the offsets of the leader's namespace
// for children (there is no per-thread file). For PID 1 the lock only
// pins the boot goroutine.
func init() { runtime.LockOSThread() }

// runRestorer is the main function of the restorer role. It returns the
// exit status: 0 when the processes run, 1 otherwise. Its result goes to
// resultFile either way.
//
// The restorer runs in two steps. The first, "/init ksu-restorer",
// unshares a time namespace and runs the second, "/init ksu-restorer
// CLOCKS", in it. The second step restores; its stubs, and so the
// restored processes, inherit the namespace.
func runRestorer() int {
	log := klog.NewKmsg("ksu-restorer", os.Stdout)
	if len(os.Args) == 2 {
		return runInTimeNamespace(log)
	}
	res := restoreSnapshot(log, os.Args[2])
	if res.Error != "" {
		log.Logf(klog.LevelErr, "restore failed: %s", res.Error)
	}
	if err := writeJSON(resultFile, res); err != nil {
		log.Logf(klog.LevelErr, "write restore result: %v", err)
		return 1
	}
	if !res.Restored {
		return 1
	}
	return 0
}

// runInTimeNamespace is the first step of the restorer: it unshares a
// time namespace that continues the snapshot's clocks and runs the second
// step in it, which writes the result. After the unshare this process
// must not start threads, so it only exits with the second step's
// status; a failure before that is written as the result.
func runInTimeNamespace(log *klog.Kmsg) int {
	var res restoreResult
	meta, pids, err := scanSnapshot(os.DirFS(initramfs.SnapshotDir))
	res.SnapshotKernel, res.PIDs, res.SnapshotAt = meta.KernelRelease, pids, meta.Time
	if err == nil {
		log.Printf("entering a time namespace, %v after the snapshot", time.Since(meta.Time).Round(time.Millisecond))
		// /proc is mounted in the new root by now.
		var ws unix.WaitStatus
		_, ws, err = runWithOffsets(filepath.Join(initramfs.NewRootDir, "proc"), meta, time.Now())
		if err == nil {
			return ws.ExitStatus()
		}
	}
	res.Error = err.Error()
	log.Logf(klog.LevelErr, "restore failed: %s", res.Error)
	if err := writeJSON(filepath.Join(initramfs.NewRootDir, resultFile), res); err != nil {
		log.Logf(klog.LevelErr, "write restore result: %v", err)
	}
	return 1
}

// restoreSnapshot restores the snapshot of the initramfs inside the new
// root. clocks is the JSON of the time namespace's clockOffsets.
func restoreSnapshot(log *klog.Kmsg, clocks string) restoreResult {
	var res restoreResult
	if err := json.Unmarshal([]byte(clocks), &res.Clocks); err != nil {
		res.Error = fmt.Sprintf("decode clock offsets %q: %v", clocks, err)
		return res
	}
	dir, err := os.Open(initramfs.SnapshotDir)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer dir.Close()
	// The parts are opened as the restore reads them, after the chroot
	// below, so they are reached through the directory's descriptor.
	fsys := os.DirFS(fmt.Sprintf("/proc/self/fd/%d", dir.Fd()))
	res.AllOrNothing = rollbackReady("/") // read in the initramfs, before the chroot
	if err := enterNewRoot(); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := log.OpenKernelLog(); err != nil {
		log.Printf("logging to the console only: %v", err)
	}
	if err := checkTimeNamespace(); err != nil {
		res.Error = err.Error()
		return res
	}
	meta, pids, err := scanSnapshot(fsys)
	res.SnapshotKernel, res.PIDs, res.SnapshotAt = meta.KernelRelease, pids, meta.Time
	if err != nil {
		res.Error = err.Error()
		return res
	}
	return runRestore(log, fsys, res)
}

// checkTimeNamespace checks that the restorer runs outside PID 1's time
// namespace, so that the restored processes do not change PID 1's clocks.
func checkTimeNamespace() error {
	ours, err1 := os.Readlink("/proc/self/ns/time")
	init, err2 := os.Readlink("/proc/1/ns/time")
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("compare time namespaces: %w", err)
	}
	if ours == init {
		return errors.New("the restorer runs in the initial time namespace: restored processes would see their clocks restart")
	}
	return nil
}

// enterNewRoot makes the mounted root the restorer's root directory, so
// that the snapshot's paths resolve as they did on the old kernel. The
// restored processes inherit it; it is the real init's root after the
// handoff, because switchRoot moves this very mount onto /.
func enterNewRoot() error {
	if err := unix.Chroot(initramfs.NewRootDir); err != nil {
		return &os.PathError{Op: "chroot", Path: initramfs.NewRootDir, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// runRestore recreates the processes and fills in the result.
func runRestore(log *klog.Kmsg, fsys fs.FS, res restoreResult) restoreResult {
	ar, err := snapshot.OpenCPIO(fsys, ".")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer ar.Close()
	// Killed tasks of a tree that fails are orphans; as their subreaper
	// the restorer reaps them and frees their PIDs at once.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Printf("prctl(PR_SET_CHILD_SUBREAPER): %v; init reaps the tasks of a failed tree", err)
	}
	stats, err := restore.Restore(ar, restore.Options{Logf: log.Printf, AllOrNothing: res.AllOrNothing,
		MountTmpfs: mountTmpfs})
	res.ResumedAt = time.Now()
	res.Resumed, res.ConnectionsRebuilt = stats.Resumed, stats.ConnectionsRebuilt
	res.Processes, res.Threads, res.Pages, res.Restore = stats.Processes, stats.Threads, stats.Pages, stats.Total
	for _, f := range stats.Failed {
		res.Failed = append(res.Failed, failure{Root: f.Root, Comm: f.Comm, PIDs: f.PIDs, Reason: f.Error()})
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Tmpfs = finishTmpfs(log.Printf, stats.Paths)
	res.Restored = true
	log.Printf("restored %d processes, %d threads, %d bytes of memory in %v",
		stats.Processes, stats.Threads, stats.Pages, stats.Total.Round(time.Millisecond))
	return res
}

// scanSnapshot reads the snapshot's Meta and the pids of its processes,
// which come before any page contents, and creates the cgroups of the
// processes when a cgroup2 hierarchy is mounted on /sys/fs/cgroup: the
// restore moves each process into its saved cgroup, and on a fresh boot
// only the root cgroup exists.
func scanSnapshot(fsys fs.FS) (snapshot.Meta, []int32, error) {
	ar, err := snapshot.OpenCPIO(fsys, ".")
	if err != nil {
		return snapshot.Meta{}, nil, err
	}
	defer ar.Close()
	rd, err := snapshot.NewReader(ar, snapshot.ReaderOptions{})
	if err != nil {
		return snapshot.Meta{}, nil, fmt.Errorf("read snapshot: %w", err)
	}
	defer rd.Close()
	var pids []int32
	for {
		sec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rd.Meta(), pids, nil
		}
		if err != nil {
			return rd.Meta(), pids, fmt.Errorf("read snapshot: %w", err)
		}
		switch sec.Type {
		case snapshot.SectionPages:
			return rd.Meta(), pids, nil
		case snapshot.SectionProcess:
			p, err := sec.Process()
			if err != nil {
				return rd.Meta(), pids, fmt.Errorf("read snapshot: %w", err)
			}
			pids = append(pids, p.PID)
			createCgroup(p.Identity.Cgroup)
		}
	}
}

// writeJSON writes v to path, creating its directory.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// joinPIDs formats pids as "1 2 3".
func joinPIDs(pids []int32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, " ")
}

// cgroupRoot is where ksu-init mounts the cgroup2 hierarchy, as systemd
// does, relative to the restorer's root.
const cgroupRoot = "/sys/fs/cgroup"

// createCgroup creates the cgroup v2 group path, if cgroupRoot is a
// cgroup2 mount. A failure shows up when the restore joins the group.
func createCgroup(path string) {
	var st unix.Statfs_t
	if path == "" || unix.Statfs(cgroupRoot, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return
	}
	_ = os.MkdirAll(filepath.Join(cgroupRoot, path), 0o755)
}
