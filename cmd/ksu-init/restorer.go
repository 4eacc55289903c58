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
func runRestorer() int {
	// The time namespace is unshared by the main thread, and only
	// children forked from it enter the namespace, so restore runs on it
	// too (see init).
	log := klog.NewKmsg("ksu-restorer", os.Stdout)
	res := restoreSnapshot(log)
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

// restoreSnapshot restores the snapshot of the initramfs inside the new
// root and into a new time namespace.
func restoreSnapshot(log *klog.Kmsg) restoreResult {
	var res restoreResult
	dir, err := os.Open(initramfs.SnapshotDir)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer dir.Close()
	// The parts are opened as the restore reads them, after the chroot
	// below, so they are reached through the directory's descriptor.
	fsys := os.DirFS(fmt.Sprintf("/proc/self/fd/%d", dir.Fd()))
	if err := enterNewRoot(); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := log.OpenKernelLog(); err != nil {
		log.Printf("logging to the console only: %v", err)
	}
	meta, pids, err := scanSnapshot(fsys)
	res.SnapshotKernel, res.PIDs, res.SnapshotAt = meta.KernelRelease, pids, meta.Time
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Clocks, err = enterTimeNamespace(meta, time.Now())
	if err != nil {
		res.Error = err.Error()
		return res
	}
	log.Printf("time namespace: %s", res.Clocks)
	return runRestore(log, fsys, res)
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
	stats, err := restore.Restore(ar, restore.Options{Logf: log.Printf})
	res.ResumedAt = time.Now()
	res.Processes, res.Threads, res.Pages, res.Restore = stats.Processes, stats.Threads, stats.Pages, stats.Total
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Restored = true
	log.Printf("restored %d processes, %d threads, %d bytes of memory in %v",
		stats.Processes, stats.Threads, stats.Pages, stats.Total.Round(time.Millisecond))
	return res
}

// scanSnapshot reads the snapshot's Meta and the pids of its processes,
// which come before any page contents.
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
