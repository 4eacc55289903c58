package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/kexec"
	"github.com/ksu-project/ksu/pkg/klog"
)

// rollbackNote records a rollback. ksu-init writes it into the old
// kernel's initramfs as kexec.RolledBackNote, and the old kernel's
// ksu-init copies it into its report.
type rollbackNote struct {
	FromKernel string    `json:"from_kernel"` // the kernel where the restore failed
	Reason     string    `json:"reason"`
	Failures   []failure `json:"failures,omitempty"` // the trees that failed there
}

// rollbackReady reports whether the initramfs at root carries the old
// kernel, its initramfs and its command line, which ksu update
// --rollback-on-failure puts there.
func rollbackReady(root string) bool {
	for _, name := range []string{kexec.RollbackKernel, kexec.RollbackInitrd, kexec.RollbackCmdline} {
		if st, err := os.Stat(filepath.Join(root, name)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// rollbackReason returns why the restore calls for a rollback, and false
// when it does not. runErr is the error of runRestorer.
//
// Any failed tree calls for one, not only the failure of every tree,
// because the operator asked for the service to survive and the old
// kernel restores every tree from the same snapshot. With the rollback
// files present the restorer works all or nothing (restore.Options), so
// a failed tree stops the restore before any process runs.
//
// A rollback is possible only while the snapshot is still the whole
// state of the processes. So no restored task may have run (Resumed),
// and no TCP connection may have left repair mode (ConnectionsRebuilt),
// because from then on its peer talks to the new kernel's socket.
// Without a result (the restorer crashed or timed out) neither is known,
// so there is no rollback.
//
// Limitation: the restore rebuilds every TCP connection, and leaves
// repair mode, when it installs the descriptors of the first process
// that holds one. A later failure in a preserved service with open
// connections then boots the new kernel without it instead of rolling
// back. Keeping the sockets in repair mode until just before the resume
// would lift this.
func rollbackReason(res restoreResult, runErr error) (string, bool) {
	switch {
	case runErr != nil, res.Restored, res.Resumed, res.ConnectionsRebuilt:
		return "", false
	case res.Error != "":
		return res.Error, true
	}
	return "restore failed without a reason", true
}

// rollBack starts the old kernel again with the same snapshot. It
// returns only on failure, when the boot may go on without the
// processes.
func (b *boot) rollBack(reason string, res restoreResult) error {
	note := rollbackNote{FromKernel: runningRelease(), Reason: reason, Failures: res.Failed}
	b.log.Logf(klog.LevelErr, "rolling back to the old kernel: %s", reason)
	data, err := os.ReadFile(kexec.RollbackCmdline)
	if err != nil {
		return fmt.Errorf("read rollback command line: %w", err)
	}
	cmdline := kexec.DropParams(strings.TrimSpace(string(data)), failpoint.EnvVar)
	// N.B. kexec.Load reopens the initramfs memfd through /proc/self/fd,
	// but the restore stage moved /proc into the new root.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc on /proc for the rollback: %w", err)
	}
	defer unix.Unmount("/proc", unix.MNT_DETACH) // reached only on failure, before the handoff moves /proc
	initrd, err := kexec.NewInitrd()
	if err != nil {
		return err
	}
	defer initrd.Close()
	if err := assembleRollbackInitrd(initrd, "/", note); err != nil {
		return err
	}
	if err := kexec.Load(kexec.RollbackKernel, initrd, cmdline); err != nil {
		return err
	}
	b.log.Printf("rollback: loaded the old kernel with a %d KiB initramfs, command line: %s", initrd.Size()>>10, cmdline)
	b.log.Mark("KSU-ROLLBACK from %s: %s", note.FromKernel, reason)
	closeNewRoot(b.log)
	err = kexec.Exec()
	return errors.Join(err, kexec.Unload())
}

// closeNewRoot flushes the mounted root and makes it read-only, so that
// the old kernel finds it clean. A failure is logged: after a sync the
// old kernel replays the journal at worst.
func closeNewRoot(log klog.Logger) {
	unix.Sync()
	if err := unix.Mount("", initramfs.NewRootDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		log.Printf("rollback: remount %s read-only: %v; it is synced", initramfs.NewRootDir, err)
	}
}

// assembleRollbackInitrd writes the old kernel's initramfs to w: the one
// ksu update prepared, followed by a newc archive of the snapshot files
// that the initramfs at root still holds and of note as
// kexec.RolledBackNote.
func assembleRollbackInitrd(w io.Writer, root string, note rollbackNote) error {
	base, err := os.Open(filepath.Join(root, kexec.RollbackInitrd))
	if err != nil {
		return fmt.Errorf("read rollback initramfs: %w", err)
	}
	defer base.Close()
	if err := initramfs.Concat(w, base); err != nil {
		return err
	}

	noteJSON, err := json.Marshal(note)
	if err != nil {
		return fmt.Errorf("encode rollback note: %w", err)
	}
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	records := []cpio.Record{
		cpio.Directory(dir, 0o700),
		cpio.StaticFile(strings.TrimPrefix(kexec.RolledBackNote, "/"), string(noteJSON), 0o600),
	}
	files, err := snapshotRecords(root, dir)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, f := range files {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("read snapshot for the rollback: %w", err)
		}
		name := path.Join(dir, filepath.Base(f.Name()))
		records = append(records, cpio.Record{ReaderAt: f,
			Info: cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o600, FileSize: uint64(st.Size())}})
	}

	rw := cpio.Newc.Writer(w)
	if err := cpio.WriteRecords(rw, records); err != nil {
		return fmt.Errorf("write rollback snapshot archive: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("write rollback snapshot archive trailer: %w", err)
	}
	return nil
}

// snapshotRecords opens the regular files of the snapshot directory dir
// under root, which the caller closes.
func snapshotRecords(root, dir string) ([]*os.File, error) {
	entries, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("list snapshot for the rollback: %w", err)
	}
	var files []*os.File
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(root, dir, e.Name()))
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("open snapshot for the rollback: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// readRollbackNote reads the note of a rollback that brought the boot to
// this kernel, if the initramfs at root has one.
func readRollbackNote(root string) (*rollbackNote, error) {
	data, err := os.ReadFile(filepath.Join(root, kexec.RolledBackNote))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rollback note: %w", err)
	}
	var note rollbackNote
	if err := json.Unmarshal(data, &note); err != nil {
		return nil, fmt.Errorf("decode rollback note %s: %w", kexec.RolledBackNote, err)
	}
	return &note, nil
}

// rolledBack logs and returns the note of the rollback that brought the
// boot to this kernel, or nil.
func (b *boot) rolledBack() *rollbackNote {
	note, err := readRollbackNote("/")
	if err != nil {
		b.log.Logf(klog.LevelErr, "%v", err)
	}
	if note != nil {
		b.log.Printf("rolled back from kernel %s: %s", note.FromKernel, note.Reason)
	}
	return note
}
