package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/ksu-project/ksu/pkg/kmod"
	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"golang.org/x/sys/unix"
)

// Stage names. Those that are phases of an update use the names of
// pkg/phase, so the report and the logs agree.
const (
	stageEarly   = phase.Early
	stageModules = phase.Modules
	stageRoot    = phase.Mount
	stageNetwork = phase.Network
	stageRestore = phase.Restore
	stageHandoff = phase.Handoff
)

// boot is the state of one ksu-init run.
type boot struct {
	log      *klog.Kmsg
	cfg      bootConfig
	sup      *supervisor
	timeline phase.Timeline
	init     string // the init found in the new root, set by handoff
}

// stage is one step of the boot; a returned error is fatal.
type stage struct {
	name phase.Name
	run  func(*boot) error
}

func newBoot(log *klog.Kmsg) *boot {
	cfg, _ := parseCmdline("") // defaults, until /proc/cmdline is readable
	return &boot{log: log, cfg: cfg}
}

func (b *boot) stages() []stage {
	return []stage{
		{stageEarly, (*boot).mountEarly},
		{stageModules, (*boot).loadModules},
		{stageRoot, (*boot).mountRoot},
		{stageNetwork, (*boot).bringUpNetwork},
		{stageRestore, (*boot).restore},
		{stageHandoff, (*boot).handoff},
	}
}

// run boots: it runs every stage, then execs the real init. It never
// returns; a fatal error or a panic ends in b.fail.
func (b *boot) run() {
	defer b.recoverPanic()
	b.log.Printf("started as PID 1, %v after kernel start", sinceKernelStart().Round(time.Millisecond))
	b.sup = newSupervisor(b.log)
	for _, st := range b.stages() {
		if err := b.runStage(st); err != nil {
			b.fail(string(st.name), err)
		}
	}
	b.log.Printf("stages: %s", b.timeline.Summary())
	b.fail(string(stageHandoff), execInit(b.init))
}

// runStage runs one stage between a start and an end log line, and prints
// the KSU-PHASE marker that tests wait for.
func (b *boot) runStage(st stage) error {
	b.log.Printf("stage %s started", st.name)
	b.timeline.Begin(st.name)
	err := st.run(b)
	span := b.timeline.End()
	if err != nil {
		b.log.Printf("stage %s failed after %v", st.name, span.Duration.Round(time.Microsecond))
		b.log.Mark("%s", span.FailedMarker())
		return err
	}
	b.log.Printf("stage %s done in %v", st.name, span.Duration.Round(time.Microsecond))
	b.log.Mark("%s", span.Marker())
	return nil
}

// mountEarly runs the early setup steps, opens the kernel log and reads
// the kernel command line.
func (b *boot) mountEarly() error {
	for _, s := range earlySteps {
		b.log.Printf("%v", s)
		if err := s.apply(); err != nil {
			return err
		}
	}
	if err := b.log.OpenKernelLog(); err != nil {
		b.log.Printf("logging to the console only: %v", err)
	}
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	cmdline := strings.TrimSpace(string(data))
	var warnings []string
	b.cfg, warnings = parseCmdline(cmdline)
	b.log.Printf("kernel command line: %s", cmdline)
	for _, w := range warnings {
		b.log.Logf(klog.LevelWarning, "%s", w)
	}
	return nil
}

// loadModules loads the modules of the running kernel's load list. No
// list, or modules that fail, only get logged: the root may need none.
func (b *boot) loadModules() error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	dir := filepath.Join("/lib/modules", release)
	sum, err := kmod.Loader{Log: b.log}.LoadAll(dir)
	if errors.Is(err, os.ErrNotExist) {
		b.log.Printf("no %s for kernel %s (releases in /lib/modules: %s); loading no modules",
			kmod.LoadListName, release, listDir("/lib/modules"))
		return nil
	}
	if err != nil {
		b.log.Logf(klog.LevelErr, "loading no modules: %v", err)
		return nil
	}
	b.log.Printf("modules for %s: %d loaded, %d already present, %d failed %v",
		release, sum.Loaded, sum.Present, len(sum.Failed), sum.Failed)
	return nil
}

// listDir returns the names in dir, or "none".
func listDir(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return "none"
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}

// mountRoot finds the root device and mounts it on initramfs.NewRootDir.
func (b *boot) mountRoot() error {
	spec, err := parseRootSpec(b.cfg.root)
	if err != nil {
		return err
	}
	f := deviceFinder{sysRoot: "/sys", devRoot: "/dev"}
	dev, err := waitForRoot(b.log, f, spec, b.cfg.rootWait)
	if err != nil {
		return err
	}
	info, _ := f.probe(strings.TrimPrefix(dev, "/dev/"))
	var flags uintptr
	if b.cfg.readOnly {
		flags |= unix.MS_RDONLY
	}
	types := fsTypeCandidates(b.cfg.rootFSType, info.fsType)
	fsType, err := mountRootFS(dev, initramfs.NewRootDir, types, flags, b.cfg.rootFlags)
	if err != nil {
		return err
	}
	mode := "rw"
	if b.cfg.readOnly {
		mode = "ro"
	}
	b.log.Printf("mounted root %s (%s, UUID=%s, LABEL=%q) on %s %s", dev, fsType, info.uuid, info.label, initramfs.NewRootDir, mode)
	return nil
}

// restore recreates the processes of the snapshot that the initramfs
// carries, if any. It runs after the root is mounted, because the
// processes use files there, and before the handoff. A snapshot that is
// unusable or fails to restore is logged and reported in
// /run/ksu/report.json, and the boot goes on without its processes.
func (b *boot) restore() error {
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	hdr, found, err := findSnapshot(os.DirFS("/"), dir)
	switch {
	case !found:
		b.log.Printf("no snapshot in %s: plain boot", initramfs.SnapshotDir)
	case err != nil:
		b.log.Logf(klog.LevelErr, "snapshot in %s is unusable, booting without restore: %v", initramfs.SnapshotDir, err)
		b.reportUnusable(hdr, err)
	default:
		b.log.Printf("snapshot in %s verified: taken on kernel %s, %d bytes, %d compressed in %d parts",
			initramfs.SnapshotDir, hdr.KernelRelease, hdr.Size, hdr.CompressedSize, hdr.Parts)
		b.restoreProcesses(hdr)
	}
	if found {
		wipeSnapshot(b.log, initramfs.SnapshotDir)
	}
	return nil
}

// reportUnusable writes a report that names why the snapshot was not
// restored, so that the operator finds the reason after the boot. It
// moves /run into the new root first, as restoreProcesses does, because
// that tmpfs hides the root disk's /run after the handoff.
func (b *boot) reportUnusable(hdr snapshot.ArchiveHeader, err error) {
	moveSpecialMounts(b.log, initramfs.NewRootDir)
	rep := report{
		Kernel:         runningRelease(),
		SnapshotKernel: hdr.KernelRelease,
		Phases:         b.timeline.Spans,
		Failures:       []failure{{Reason: "snapshot unusable: " + err.Error()}},
	}
	if err := writeJSON(filepath.Join(initramfs.NewRootDir, reportFile), rep); err != nil {
		b.log.Logf(klog.LevelErr, "%v", err)
	}
}

// findSnapshot reports whether dir in fsys holds a snapshot archive and,
// if so, reads its header and checks the payload's checksum. Parts
// without a header are an archive that was cut short, not a plain boot.
func findSnapshot(fsys fs.FS, dir string) (snapshot.ArchiveHeader, bool, error) {
	if _, err := fs.Stat(fsys, path.Join(dir, snapshot.HeaderName)); err != nil {
		first := path.Join(dir, snapshot.PartName(0))
		if _, perr := fs.Stat(fsys, first); perr == nil {
			return snapshot.ArchiveHeader{}, true, fmt.Errorf("archive header %s is missing, but part %s is present: the archive is incomplete",
				path.Join(dir, snapshot.HeaderName), first)
		}
		return snapshot.ArchiveHeader{}, false, nil
	}
	hdr, err := snapshot.VerifyCPIO(fsys, dir)
	return hdr, true, err
}

// handoff finds the real init in the new root, while the initramfs is
// still there to fall back on, then switches root. run execs init after
// the stage's marker.
func (b *boot) handoff() error {
	candidates := initCandidates
	if b.cfg.init != "" {
		candidates = []string{b.cfg.init}
	}
	init, err := findInit(initramfs.NewRootDir, candidates)
	if err != nil {
		return err
	}
	b.init = init
	installRecordUnit(b.log, initramfs.NewRootDir)
	// The real init gets the kernel's rate limit on /dev/kmsg back, as
	// the machine's configuration set it.
	if err := b.log.RestoreRatelimit(); err != nil {
		b.log.Printf("%v", err)
	}
	if err := switchRoot(b.log, initramfs.NewRootDir); err != nil {
		return err
	}
	b.log.Printf("handing off to %s, %v after kernel start", init, sinceKernelStart().Round(time.Millisecond))
	return nil
}
