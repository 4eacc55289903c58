package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// selection is the operator's choice of processes to preserve: the
// --pid, --cgroup, --unit, --all and --exclude flags, or the defaults of
// the config file.
type selection struct {
	pids     pidList
	cgroups  stringList
	units    stringList
	all      bool
	excludes stringList // command names that --all leaves out
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}

// selectionHelp documents the selection in the help of check and update.
const selectionHelp = `Selection: --pid takes a process and its descendants; --cgroup every
process of a cgroup v2 directory and its sub-cgroups; --unit every
process of a systemd unit's cgroup. A process whose parent is selected
too belongs to its parent's tree, and a tree always includes every
descendant of its root. --all selects every process except kernel
threads, init, ksu itself, systemd's own daemons (systemd-journald,
systemd-udevd, systemd-logind, systemd-networkd and the like, and user
managers), the D-Bus daemon, getty and agetty, the other commands of
the pipeline that runs ksu (its process group), the processes named
with --exclude (by comm), and the descendants and ancestors of all of
these; check lists each with the reason. A selector that matches no
process is an error.
`

// selectionFlags are the flag names of a selection, which replace the
// config file's selection when any of them is given.
var selectionFlags = []string{"pid", "cgroup", "unit", "all"}

// register adds the selection flags to fs; verb is what the command does
// with the processes ("check", "preserve").
func (s *selection) register(fs *flag.FlagSet, verb string) {
	fs.Var(&s.pids, "pid", "root of a process tree to "+verb+", with its descendants; repeat for several trees")
	fs.Var(&s.cgroups, "cgroup",
		"every process of this cgroup v2 directory and its sub-cgroups, relative to the cgroup2 mount or absolute; repeatable")
	fs.Var(&s.units, "unit",
		"every process of this systemd unit's cgroup, NAME.service when NAME has no unit suffix; repeatable")
	fs.BoolVar(&s.all, "all", false, "every user-space process that ksu can keep (see the text above)")
	fs.Var(&s.excludes, "exclude", "with --all, leave out processes with this command name (comm), "+
		"their descendants and ancestors; repeatable")
}

func (s selection) empty() bool {
	return len(s.pids) == 0 && len(s.cgroups) == 0 && len(s.units) == 0 && !s.all
}

// validate rejects combinations that have no single meaning.
func (s selection) validate() error {
	if s.all && (len(s.pids) > 0 || len(s.cgroups) > 0 || len(s.units) > 0) {
		return fmt.Errorf("%w: --all already selects every process: give it without --pid, --cgroup or --unit", errUsage)
	}
	if !s.all && len(s.excludes) > 0 {
		return fmt.Errorf("%w: exclude applies to --all only", errUsage)
	}
	return nil
}

// selected is a resolved selection: the roots of the process trees, and
// what --all left out.
type selected struct {
	Roots   []int
	Skipped []skipped
}

// skipped is a process that --all leaves out, and why.
type skipped struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Reason string `json:"reason"`
}

// host is the system a selection is resolved on.
type host struct {
	proc string // the proc mount, normally /proc
	// cgroupRoot is the cgroup2 mount point, "" to find it in the
	// mountinfo of ksu.
	cgroupRoot string
	self       int // the pid of ksu
}

// localHost returns the running system, as ksu sees it.
func localHost() host {
	return host{proc: procRoot, self: os.Getpid()}
}

// maxCgroups bounds the cgroup directories a selection walks.
const maxCgroups = 1 << 14

// resolve turns s into process trees. A selector that matches no process
// is an error that names it. A tree always holds every descendant of its
// root, because the dump takes whole trees, so a process of a cgroup
// brings its children even from outside the cgroup.
func (h host) resolve(s selection) (selected, error) {
	if s.all {
		return h.selectAll(s.excludes)
	}
	members := map[int]bool{}
	for _, pid := range s.pids {
		if _, err := os.Stat(filepath.Join(h.proc, strconv.Itoa(pid))); err != nil {
			return selected{}, fmt.Errorf("--pid %d: no such process", pid)
		}
		pids, err := procfs.Descendants(h.proc, []int{pid}, maxTreeSize)
		if err != nil {
			return selected{}, fmt.Errorf("--pid %d: %w", pid, err)
		}
		addAll(members, pids)
	}
	for _, path := range s.cgroups {
		pids, err := h.cgroupMembers(path)
		if err != nil {
			return selected{}, fmt.Errorf("--cgroup %s: %w", path, err)
		}
		addAll(members, pids)
	}
	for _, name := range s.units {
		pids, err := h.unitMembers(name)
		if err != nil {
			return selected{}, fmt.Errorf("--unit %s: %w", name, err)
		}
		addAll(members, pids)
	}
	return selected{Roots: h.treeRoots(members)}, nil
}

func addAll(set map[int]bool, pids []int) {
	for _, pid := range pids {
		set[pid] = true
	}
}

// treeRoots returns the members whose parent is not a member, in pid
// order. A member that exited meanwhile is dropped.
func (h host) treeRoots(members map[int]bool) []int {
	var roots []int
	for pid := range members {
		st, err := procfs.ReadStat(h.proc, pid)
		if err != nil {
			continue
		}
		if !members[st.PPid] {
			roots = append(roots, pid)
		}
	}
	slices.Sort(roots)
	return roots
}

// cgroupDir returns the directory of cgroup path: an absolute path under
// the cgroup2 mount is taken as it is, any other path is relative to the
// mount, as the paths in /proc/PID/cgroup are.
func (h host) cgroupDir(path string) (string, error) {
	root, err := h.cgroup2Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, path)
	if filepath.IsAbs(path) && (path == root || strings.HasPrefix(path, root+"/")) {
		dir = filepath.Clean(path)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return "", fmt.Errorf("%s is not a cgroup v2 directory: %w", dir, err)
	}
	return dir, nil
}

// cgroup2Root returns the mount point of the cgroup v2 hierarchy,
// preferring /sys/fs/cgroup where several exist.
func (h host) cgroup2Root() (string, error) {
	if h.cgroupRoot != "" {
		return h.cgroupRoot, nil
	}
	mounts, err := procfs.ReadMountInfo(h.proc, h.self)
	if err != nil {
		return "", fmt.Errorf("find the cgroup2 mount: %w", err)
	}
	root := ""
	for _, m := range mounts {
		if m.FSType == "cgroup2" && (root == "" || m.MountPoint == "/sys/fs/cgroup") {
			root = m.MountPoint
		}
	}
	if root == "" {
		return "", errors.New("no cgroup2 filesystem is mounted: mount one on /sys/fs/cgroup, or select with --pid")
	}
	return root, nil
}

// cgroupMembers returns the processes of cgroup path and its
// sub-cgroups.
func (h host) cgroupMembers(path string) ([]int, error) {
	dir, err := h.cgroupDir(path)
	if err != nil {
		return nil, err
	}
	pids, err := walkCgroup(dir)
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process in cgroup %s or its sub-cgroups", dir)
	}
	trace.Printf("selection: cgroup %s: %s %v", dir, plural(len(pids), "process", "processes"), pids)
	return pids, nil
}

// walkCgroup reads cgroup.procs of dir and of every cgroup below it.
func walkCgroup(dir string) ([]int, error) {
	var pids []int
	err := eachCgroup(dir, func(path string) error {
		procs, err := readCgroupProcs(filepath.Join(path, "cgroup.procs"))
		pids = append(pids, procs...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", dir, err)
	}
	return pids, nil
}

// eachCgroup calls fn for root and every cgroup below it, up to
// maxCgroups of them. fn may return fs.SkipDir to skip a cgroup's
// children.
func eachCgroup(root string, fn func(path string) error) error {
	n := 0
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed during the walk has no processes left.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if n++; n > maxCgroups {
			return fmt.Errorf("more than %d cgroups below %s", maxCgroups, root)
		}
		return fn(path)
	})
}

func readCgroupProcs(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s: invalid pid %q", path, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// unitSuffixes are the unit types that systemd gives a cgroup.
var unitSuffixes = []string{".service", ".scope", ".slice"}

// unitName appends .service to name unless it ends in a unit type, as
// systemctl does.
func unitName(name string) string {
	for _, suffix := range []string{".service", ".scope", ".slice", ".socket", ".mount", ".swap",
		".timer", ".path", ".target", ".device", ".automount"} {
		if strings.HasSuffix(name, suffix) {
			return name
		}
	}
	return name + ".service"
}

// unitMembers returns the processes of the cgroup of systemd unit name.
func (h host) unitMembers(name string) ([]int, error) {
	dir, err := h.unitCgroup(unitName(name))
	if err != nil {
		return nil, err
	}
	pids, err := walkCgroup(dir)
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process in the unit's cgroup %s: is the unit running?", dir)
	}
	trace.Printf("selection: unit %s: cgroup %s, %s %v", name, dir, plural(len(pids), "process", "processes"), pids)
	return pids, nil
}

// unitCgroup finds the cgroup directory of unit name. systemd's cgroups
// start at the parent of init's own cgroup (/init.scope on a host, a
// deeper path in a container); units sit in their slices below it,
// system.slice for system services.
func (h host) unitCgroup(name string) (string, error) {
	if !slices.Contains(unitSuffixes, filepath.Ext(name)) {
		return "", fmt.Errorf("unit %s has no cgroup: only services, scopes and slices have one", name)
	}
	root, err := h.cgroup2Root()
	if err != nil {
		return "", err
	}
	base := root
	if cgroups, err := procfs.ReadCgroup(h.proc, 1); err == nil {
		for _, cg := range cgroups {
			if cg.Hierarchy == 0 && filepath.Base(cg.Path) == "init.scope" {
				base = filepath.Join(root, filepath.Dir(cg.Path))
			}
		}
	}
	if dir := filepath.Join(base, "system.slice", name); isDir(dir) {
		return dir, nil
	}
	matches, err := findCgroup(base, name)
	if err != nil {
		return "", err
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no cgroup named %s below %s: is the unit running? (systemctl status %s)", name, base, name)
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("several cgroups named %s: %s: select one with --cgroup", name, strings.Join(matches, ", "))
}

// findCgroup returns every cgroup below root whose name is name.
func findCgroup(root, name string) ([]string, error) {
	var matches []string
	err := eachCgroup(root, func(path string) error {
		if filepath.Base(path) == name && path != root {
			matches = append(matches, path)
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search cgroup %s: %w", name, err)
	}
	return matches, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// prepareUpdate applies the config file to the flags of ksu update,
// takes the locks and resolves the selection into o.pids. The caller
// checks for root first and releases the locks.
func prepareUpdate(fs *flag.FlagSet, o *updateOptions, sel *selection, common *commonFlags) (*heldLocks, error) {
	if err := common.apply(fs, sel, &o.appendArgs); err != nil {
		return nil, err
	}
	locks, err := defaultLocks.acquire()
	if err != nil {
		return nil, err
	}
	if sel.empty() {
		trace.Printf("selection: none, the kernel switches without preserving processes")
		return locks, nil
	}
	chosen, err := localHost().resolve(*sel)
	if err != nil {
		locks.release()
		return nil, err
	}
	o.pids = chosen.Roots
	kthreads := 0
	for _, s := range chosen.Skipped {
		if s.Reason == reasonKernelThread {
			kthreads++
			continue
		}
		trace.Printf("selection: left out process %d (%s): %s", s.PID, s.Comm, s.Reason)
	}
	if kthreads > 0 {
		trace.Printf("selection: left out %s", plural(kthreads, "kernel thread", "kernel threads"))
	}
	trace.Printf("selection: %s rooted at %v", plural(len(o.pids), "tree", "trees"), o.pids)
	return locks, nil
}
