package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/failpoint"
	"github.com/ksu-project/ksu/pkg/kexec"
	"github.com/ksu-project/ksu/pkg/phase"
)

// updateOptions are the flags of "ksu update".
type updateOptions struct {
	kernel     string
	appendArgs string
	base       string
	modulesDir string
	yes        bool
	pids       pidList // roots of the process trees to preserve
	dryRun     bool    // stop after the load and undo everything
	wipeFree   bool    // add init_on_free=1 to the new kernel's command line
	spill      string  // directory of the initramfs file; empty keeps it in memory
	rollback   rollbackOptions
	hold       string // the ksu.hold= parameter for the new kernel (see holdParam)
}

func updateFlags(fs *flag.FlagSet) func([]string) error {
	var o updateOptions
	var latest bool
	var sel selection
	var common commonFlags
	fs.StringVar(&o.kernel, "kernel", "", "the new kernel's bzImage, e.g. /boot/vmlinuz-RELEASE")
	fs.BoolVar(&latest, "latest", false,
		"switch to the newest kernel in /boot, in Debian version order, if it is newer than the running one")
	fs.BoolVar(&o.dryRun, "dry-run", false,
		"do everything up to the kexec, check the snapshot, then unload the kernel and go on")
	fs.StringVar(&o.appendArgs, "append", "", "parameters added to the new kernel's command line")
	fs.BoolVar(&o.wipeFree, "wipe-free-memory", false,
		"have the new kernel zero all free memory at boot and every page it frees (init_on_free=1)")
	fs.StringVar(&o.spill, "spill", "",
		"write the initramfs with the snapshot to an unnamed file, mode 0600, in directory DIR instead of memory")
	fs.StringVar(&o.base, "base", "/usr/lib/ksu/ksu-init.cpio", "the ksu-init base initramfs")
	fs.StringVar(&o.modulesDir, "modules-dir", "/lib/modules",
		"where the new kernel's modules are installed, one directory per release")
	fs.BoolVar(&o.yes, "yes", false, "switch without asking; required when not on a terminal")
	o.rollback.register(fs)
	sel.register(fs, "preserve across the switch")
	common.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ksu update {--kernel VMLINUZ | --latest} [--pid PID... | --cgroup PATH... |
                  --unit NAME... | --all [--exclude COMM...]] [--append ARGS]
                  [--config FILE] [--dry-run] [--spill DIR] [--yes] [--verbose]

Switch the running machine to the kernel VMLINUZ with kexec. The new
kernel starts with ksu's initramfs, which loads the modules for the root
disk and the network, mounts the root filesystem and starts the real
init. Its command line is the running one's, less BOOT_IMAGE= and
initrd=, plus ARGS, plus panic=10 unless a panic= is given.

The snapshot holds the processes' memory. ksu-init wipes its copy after
the restore, but the pages the kernel freed, and the whole RAM of the
old kernel, keep their contents until reused, as after any kexec.
--wipe-free-memory adds init_on_free=1, so that the new kernel zeroes
all free memory at boot and every page it frees; the clearing at boot
lengthens the pause in proportion to the machine's memory.

With a selection, the selected process trees are checked, then frozen
and dumped into the initramfs; ksu-init recreates them, with the
same PIDs, before it starts the real init, and writes what it restored
to /run/ksu/report.json.

Until the kexec, a failure changes nothing: the loaded kernel is
unloaded, the filesystems are thawed and the frozen processes resume.

When the running kernel enforces kexec signatures (lockdown integrity
or confidentiality, or CONFIG_KEXEC_SIG_FORCE), or when ksu cannot read
that policy, ksu loads the new kernel once before the freeze and
unloads it again, so that a kernel whose signature the running kernel
rejects stops the update at phase check, before any process is paused.

With --dry-run, ksu freezes and dumps the processes, loads the kernel
with the snapshot, reads the snapshot back to check that it decodes,
then unloads the kernel and prints how long the pause would have been.
The processes are paused for the freeze and the dump only.

`+spillHelp+`
One ksu update runs at a time: it holds /run/ksu/lock, and it rejects
the update while apt or dpkg holds /var/lib/dpkg/lock-frontend or
/var/lib/dpkg/lock. It holds dpkg's locks too until the kexec, so that
no package is installed meanwhile.

`+rollbackHelp+`
`+selectionHelp+`
`+configHelp+`
Options:
`)
		printOptions(fs)
	}
	return func(args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
		}
		if o.kernel == "" && !latest {
			return fmt.Errorf("%w: --kernel is required, or --latest", errUsage)
		}
		kernel, err := kernelFlags(o.kernel, latest)
		if err != nil {
			return err
		}
		o.kernel = kernel
		// Checked before the locks, whose directory only root can create.
		if err := checkRoot(); err != nil {
			return err
		}
		locks, err := prepareUpdate(fs, &o, &sel, &common)
		if err != nil {
			return err
		}
		defer locks.release()
		return update(o)
	}
}

// update runs the switch. It returns only on failure, or after a dry run.
func update(o updateOptions) error {
	log := newSwitchLog()
	defer liftKmsgRatelimit(log)()
	progress = newProgress(os.Stderr)
	var tl phase.Timeline

	tl.Begin(phase.Check)
	img, err := checkUpdate(o)
	if err != nil {
		return fmt.Errorf("phase check, nothing was changed: %w", err)
	}
	pageBytes, err := checkTrees(o.pids)
	if err != nil {
		return err
	}
	progress.expectPages(pageBytes)
	o.hold = holdArg(localHost().wholeServices(o.pids), log)
	log.Mark(tl.End().Marker())
	if !o.dryRun {
		if err := confirm(o, img.Release); err != nil {
			return err
		}
	}
	if o.dryRun {
		log.Printf("dry run: rehearsing the switch to kernel %s from %s", img.Release, o.kernel)
	} else {
		log.Printf("switching to kernel %s from %s", img.Release, o.kernel)
	}

	// The base and modules archives are assembled before the freeze, so
	// that the preserved processes do not wait for them.
	lockMemory(log)
	initrd, err := assembleInitrd(o, img.Release, log)
	if err != nil {
		return fmt.Errorf("phase load, before the freeze, nothing was changed: %w", err)
	}
	defer discardInitrd(initrd, log) // update returns only when the kexec did not happen
	if err := appendRollback(initrd, o, log); err != nil {
		return fmt.Errorf("phase check, nothing was changed: %w", err)
	}
	if err := preloadKernel(o, initrd, log); err != nil {
		return fmt.Errorf("phase check, nothing was changed: %w", err)
	}
	// From the freeze on, a SIGKILL or a panic would leave the processes
	// stopped. The guard resumes them if this process dies before
	// disarming it.
	stopped := findJobStops(o.pids)
	guard, err := startGuard(o.pids, stopped, initrd)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			// A panic cleans nothing up, so the guard stays armed and
			// resumes the processes once this process has died.
			panic(r)
		}
		guard.disarm()
	}()
	var dry *dryRun
	if o.dryRun && len(o.pids) > 0 {
		if dry, err = dumpDryRun(initrd, o.pids, guard, log); err != nil {
			return errors.Join(fmt.Errorf("phase freeze and dump, nothing was changed: %w", err),
				releaseAfterDump(initrd, o.pids, stopped, err, log))
		}
	} else if len(o.pids) > 0 {
		traced, err := dumpIntoInitrd(initrd, o.pids, stopped, guard, log)
		// Deferred, so that it runs after the resumeTrees of any
		// return below.
		defer detachDumped(traced, log)
		if err != nil {
			return errors.Join(fmt.Errorf("phase freeze and dump, nothing was changed: %w", err),
				releaseAfterDump(initrd, o.pids, stopped, err, log))
		}
	}

	tl.Begin(phase.Load)
	guard.enter("load")
	if err := loadKernel(o, initrd, log); err != nil {
		return errors.Join(fmt.Errorf("phase load, processes resumed: %w", err), resumeTrees(o.pids, stopped))
	}
	if o.spill != "" {
		discardInitrd(initrd, log) // the kernel has its copy
	}
	if err := failpoint.Check("load"); err != nil {
		return errors.Join(fmt.Errorf("phase load, kernel unloaded and processes resumed: %w", err),
			kexec.Unload(), resumeTrees(o.pids, stopped))
	}
	load := tl.End()
	log.Mark(load.Marker())
	if o.dryRun {
		if dry == nil {
			dry = &dryRun{}
		}
		dry.load = load.Duration
		return dry.finish(os.Stdout, log)
	}

	guard.enter("sync")
	return errors.Join(switchKernel(&tl, log), resumeTrees(o.pids, stopped))
}

// releaseAfterDump frees initrd and gives back the connections of the
// trees rooted at roots once more after a failed dump. Dump gives them
// back itself, but when it failed for lack of memory, the netlink socket
// that lifts the packet drop can fail the same way while initrd still
// holds the snapshot written so far. When dumpErr says that Dump left
// the processes stopped for that reason, releaseAfterDump resumes them
// too, but the ones in stopped.
func releaseAfterDump(initrd *kexec.Initrd, roots []int, stopped jobStops, dumpErr error, log *switchLog) error {
	discardInitrd(initrd, log)
	if errors.Is(dumpErr, dump.ErrLeftStopped) {
		if err := resumeTrees(roots, stopped); err != nil {
			return fmt.Errorf("resume the processes after the failed dump: %w", err)
		}
		return nil
	}
	pids, err := listTrees(roots)
	if err = errors.Join(err, dump.ReleaseConnections(pids)); err != nil {
		return fmt.Errorf("give back connections after the failed dump: %w", err)
	}
	return nil
}

// checkRoot rejects a user other than root.
func checkRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: loading a kernel needs CAP_SYS_BOOT, and freezing processes CAP_SYS_PTRACE")
	}
	return nil
}

// checkUpdate checks everything the switch needs before anything changes.
func checkUpdate(o updateOptions) (kexec.Image, error) {
	if err := checkRoot(); err != nil {
		return kexec.Image{}, err
	}
	img, err := kexec.ReadImage(o.kernel)
	if err != nil {
		return kexec.Image{}, err
	}
	if err := checkModuleIndex(o.modulesDir, img.Release); err != nil {
		return kexec.Image{}, err
	}
	if _, err := os.Stat(o.base); err != nil {
		return kexec.Image{}, fmt.Errorf("ksu-init base initramfs: %w", err)
	}
	return img, nil
}

// confirm prompts the operator on a terminal, or requires --yes elsewhere.
func confirm(o updateOptions, release string) error {
	if o.yes {
		return nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return fmt.Errorf("%w: not on a terminal: pass --yes to switch to %s", errUsage, release)
	}
	fmt.Printf("Switch this machine to kernel %s now? [y/N] ", release)
	var answer string
	fmt.Scanln(&answer)
	if answer != "y" && answer != "Y" && answer != "yes" {
		return errors.New("cancelled: nothing was changed")
	}
	return nil
}

// assembleInitrd writes the ksu-init base and the new kernel's modules
// into a new in-memory initramfs. The caller closes it.
func assembleInitrd(o updateOptions, release string, log *switchLog) (*kexec.Initrd, error) {
	start := time.Now()
	initrd, err := newInitrd(o)
	if err != nil {
		return nil, err
	}
	if err := appendFile(initrd, o.base); err != nil {
		discardInitrd(initrd, log)
		return nil, err
	}
	n, err := appendModules(initrd, filepath.Join(o.modulesDir, release), release)
	if err != nil {
		discardInitrd(initrd, log)
		return nil, err
	}
	log.Printf("initramfs: %d modules, %d KiB in %s", n, initrd.Size()>>10, since(start))
	return initrd, nil
}

// loadKernel loads the new kernel with initrd.
func loadKernel(o updateOptions, initrd *kexec.Initrd, log *switchLog) error {
	log.Printf("initramfs: %d KiB in all", initrd.Size()>>10)
	next, err := nextCmdline(o)
	if err != nil {
		return err
	}
	start := time.Now()
	progress.begin("load", "kexec_file_load of "+formatBytes(uint64(initrd.Size())))
	err = kexec.Load(o.kernel, initrd, next)
	progress.clear()
	if err != nil {
		return err
	}
	log.Printf("kexec_file_load in %s, command line: %s", since(start), next)
	return nil
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(time.Millisecond)
}

func appendFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("copy %s into the initramfs: %w", path, err)
	}
	return nil
}

// switchKernel freezes the filesystems and starts the loaded kernel. On
// failure it thaws them and unloads the kernel, so nothing has changed.
func switchKernel(tl *phase.Timeline, log *switchLog) error {
	tl.Begin(phase.Sync)
	mounts, err := writableBlockMounts()
	if err != nil {
		kexec.Unload()
		return err
	}
	thaw, err := kexec.Freeze(mounts)
	if err != nil {
		kexec.Unload()
		return fmt.Errorf("phase sync: %w", err)
	}
	if err := failpoint.Check("sync"); err != nil {
		thaw()
		return errors.Join(fmt.Errorf("phase sync, filesystems thawed: %w", err), kexec.Unload())
	}
	// From here until the kexec, log only to the kernel log: a write to
	// a file on a frozen filesystem would block forever.
	log.onlyKernel = true
	log.Mark(tl.End().Marker())
	log.Printf("kexec at %s", time.Now().UTC().Format(time.RFC3339Nano))

	err = kexec.Exec()

	thaw()
	kexec.Unload()
	log.onlyKernel = false
	return err
}
