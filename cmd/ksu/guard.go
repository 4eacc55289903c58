package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/kexec"
	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
)

// guardEnv carries the preserved roots, comma-separated, to the resume
// guard: ksu started with it set runs as the guard and nothing else.
const guardEnv = "KSU_RESUME_GUARD"

// guardStoppedEnv carries the pids that a signal had stopped before the
// freeze, comma-separated, which the guard leaves stopped.
const guardStoppedEnv = "KSU_RESUME_GUARD_STOPPED"

// guardSpillEnv carries the directory of a file-backed initramfs to the
// guard, which then gets an O_PATH descriptor of the file as fd 4 and
// zeroes the file if ksu update dies.
const guardSpillEnv = "KSU_RESUME_GUARD_SPILL"

// guardDisarm is the byte ksu update writes to the guard's pipe when it
// has cleaned up itself and the guard must do nothing. Before it, ksu
// update writes a line guardPhase+NAME as it enters each phase, which
// the guard names in its log line. During the dump, it writes a line
// guardBorrow+INJECTION before each injected call borrows a thread's
// state and guardReturn+TID once the thread has it back.
const (
	guardDisarm = 'd'
	guardPhase  = "phase "
	guardBorrow = "borrow "
	guardReturn = "return "
)

// A process killed with SIGKILL runs no cleanup. If ksu update dies that
// way between the dump and the kexec, its processes stay stopped by the
// dump's SIGSTOP, its filesystems stay frozen and the new kernel stays
// loaded. The resume guard is a child of ksu update, in its own process
// group, that waits on a pipe whose only writer is ksu update. End of
// file means that ksu update is gone without disarming it, so the guard
// undoes what ksu update may have left.
func init() {
	if roots := os.Getenv(guardEnv); roots != "" {
		// The guard must outlive ksu update when their cgroup runs out
		// of memory, so it makes the OOM killer pass it over.
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
			fmt.Fprintf(os.Stderr, "ksu resume guard: %v; the OOM killer may kill the guard\n", err)
		}
		stopped := jobStops{}
		for _, pid := range parsePIDList(os.Getenv(guardStoppedEnv)) {
			stopped[pid] = true
		}
		cleanUp := func(roots []int) error { return cleanUpSwitch(roots, stopped) }
		if dir := os.Getenv(guardSpillEnv); dir != "" {
			spill := os.NewFile(4, dir)
			cleanUp = func(roots []int) error { return errors.Join(cleanUpSwitch(roots, stopped), wipeSpill(spill)) }
		}
		os.Exit(runGuard(roots, os.NewFile(3, "resume guard pipe"), cleanUp))
	}
}

// resumeGuard is a started guard.
type resumeGuard struct {
	cmd  *exec.Cmd
	pipe *os.File
}

// startGuard starts the resume guard for the trees rooted at roots, whose
// processes in stopped stay stopped, and, if initrd is file-backed, for
// its file.
func startGuard(roots []int, stopped jobStops, initrd *kexec.Initrd) (*resumeGuard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create resume guard pipe: %w", err)
	}
	defer r.Close()
	extra := []*os.File{r}
	env := os.Environ()
	if initrd.Dir() != "" {
		spill, err := initrd.PathFile()
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("start resume guard: %w", err)
		}
		defer spill.Close()
		extra = append(extra, spill)
		env = append(env, guardSpillEnv+"="+initrd.Dir())
	}
	list := make([]string, 0, len(roots)+1)
	list = append(list, "0") // keeps the variable non-empty when no tree is preserved
	for _, pid := range roots {
		list = append(list, strconv.Itoa(pid))
	}
	var stops []string
	for pid := range stopped {
		stops = append(stops, strconv.Itoa(pid))
	}
	env = append(env, guardStoppedEnv+"="+strings.Join(stops, ","))
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(env, guardEnv+"="+strings.Join(list, ","))
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start resume guard: %w", err)
	}
	return &resumeGuard{cmd: cmd, pipe: w}, nil
}

// enter writes to the guard's pipe that ksu update enters phase name.
func (g *resumeGuard) enter(name string) {
	_, _ = g.pipe.Write([]byte(guardPhase + name + "\n"))
}

// Borrow writes inj to the guard's pipe, so that the guard can undo the
// call if ksu update dies during it. The dump calls it, as the
// ptrace.Journal, before the call changes anything. An error, such as
// a guard that is gone, cancels the call and so the dump.
func (g *resumeGuard) Borrow(inj ptrace.Injection) error {
	text, err := inj.MarshalText()
	if err != nil {
		return err
	}
	line := append(append([]byte(guardBorrow), text...), '\n')
	if _, err := g.pipe.Write(line); err != nil {
		return fmt.Errorf("tell the resume guard about an injected call: %w", err)
	}
	return nil
}

// Return writes to the guard's pipe that thread tid has its own state
// back.
func (g *resumeGuard) Return(tid int) error {
	if _, err := fmt.Fprintf(g.pipe, "%s%d\n", guardReturn, tid); err != nil {
		return fmt.Errorf("tell the resume guard about an injected call: %w", err)
	}
	return nil
}

// disarm writes guardDisarm to the guard, because ksu update cleaned up
// itself, and waits for the guard to exit.
func (g *resumeGuard) disarm() {
	_, _ = g.pipe.Write([]byte{guardDisarm})
	g.pipe.Close()
	_ = g.cmd.Wait()
}

// runGuard waits until pipe reaches end of file or carries guardDisarm.
// At end of file it calls cleanUp with the pids in roots. It returns the
// exit status.
func runGuard(roots string, pipe *os.File, cleanUp func(roots []int) error) int {
	cgroup := ownCgroup()
	kills := oomKills(cgroup)
	rec, err := readGuardPipe(pipe)
	if rec.disarmed {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ksu resume guard: read pipe: %v; cleaning up\n", err)
	}
	exited := fmt.Sprintf("ksu update %s in phase %s, before the kexec, without cleaning up",
		exitCause(cgroup, kills, oomKills(cgroup)), rec.phase)
	pids := parsePIDList(roots)
	log := newSwitchLog()
	undone, undoErr := undoInjections(pids, rec.borrowed)
	if undoErr != nil {
		// The trees are resumed all the same: a process left stopped
		// helps no one.
		log.Printf("resume guard: %s; giving back the state of injected calls failed: %v", exited, undoErr)
	}
	if err := cleanUp(pids); err != nil {
		log.Printf("resume guard: %s; cleanup failed: %v", exited, err)
		return 1
	}
	log.Printf("resume guard: %s; %s"+
		"thawed filesystems, unloaded any kexec kernel, resumed the trees of processes %v", exited, undone, pids)
	if undoErr != nil {
		return 1
	}
	return 0
}

// untracedWait bounds how long the guard waits for the kernel to detach
// the processes from the dead ksu update. The kernel closes a dying
// process's files, which ends the guard's pipe, before it detaches the
// process's tracees. A SIGCONT before the detach would let a thread
// with borrowed registers run, so the bound is generous.
const untracedWait = 30 * time.Second

// undoInjections waits until no process of the trees rooted at roots is
// traced any more, then gives each thread in borrowed back the state
// that its injected call borrowed. It returns a phrase for the log line.
// Without such a thread it returns at once, because a thread that has
// its own registers can be resumed while it is still traced.
func undoInjections(roots []int, borrowed map[int]ptrace.Injection) (string, error) {
	if len(borrowed) == 0 {
		return "", nil
	}
	err := waitUntraced(roots, untracedWait)
	var tids []int
	for tid, inj := range borrowed {
		if uerr := ptrace.Undo(inj); uerr != nil {
			err = errors.Join(err, uerr)
			continue
		}
		tids = append(tids, tid)
	}
	slices.Sort(tids)
	return fmt.Sprintf("gave threads %v back the registers an injected call borrowed, ", tids), err
}

// waitUntraced polls the threads of the trees rooted at roots until none
// has a tracer, for at most d.
func waitUntraced(roots []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		tid := tracedThread(roots)
		if tid == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d is still traced %v after ksu update died", tid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tracedThread returns a thread of the trees rooted at roots that has a
// tracer, or 0.
func tracedThread(roots []int) int {
	pids, _ := listTrees(roots)
	for _, pid := range pids {
		tids, _ := procfs.Tasks(procRoot, pid)
		for _, tid := range tids {
			if st, err := procfs.ReadStatus(procRoot, tid); err == nil && st.TracerPid != 0 {
				return tid
			}
		}
	}
	return 0
}

// cleanUpSwitch thaws the writable block filesystems, unloads the kexec
// kernel and resumes the trees rooted at roots but the processes in
// stopped. It thaws first, because the log may go to a file on a frozen
// filesystem.
func cleanUpSwitch(roots []int, stopped jobStops) error {
	return errors.Join(thawAll(), unloadIfLoaded(), resumeTrees(roots, stopped))
}

// parsePIDList returns the positive pids of a comma-separated list.
func parsePIDList(list string) []int {
	var pids []int
	for _, s := range strings.Split(list, ",") {
		if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// thawAll thaws every writable block filesystem. Thawing one that is not
// frozen fails with EINVAL, which is ignored.
func thawAll() error {
	mounts, err := writableBlockMounts()
	if err != nil {
		return err
	}
	var errs error
	for _, m := range mounts {
		f, err := os.Open(m)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("open %s to thaw it: %w", m, err))
			continue
		}
		if err := unix.IoctlSetInt(int(f.Fd()), ioctlFITHAW, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = errors.Join(errs, fmt.Errorf("thaw %s: %w", m, err))
		}
		f.Close()
	}
	return errs
}

// ioctlFITHAW is FITHAW, _IOWR('X', 120, int), from linux/fs.h.
const ioctlFITHAW = 0xc0045878

// unloadIfLoaded unloads the kexec kernel if one is loaded.
func unloadIfLoaded() error {
	b, err := os.ReadFile("/sys/kernel/kexec_loaded")
	if err == nil && strings.TrimSpace(string(b)) == "0" {
		return nil
	}
	return kexec.Unload()
}

// guardRecord is the state that the lines on the guard's pipe describe.
type guardRecord struct {
	// phase is the last phase ksu update entered.
	phase string
	// disarmed is true when ksu update disarmed the guard.
	disarmed bool
	// borrowed are the injected calls whose threads did not get their
	// state back, by thread id.
	borrowed map[int]ptrace.Injection
}

// readGuardPipe reads the guard's pipe until guardDisarm or end of file.
// The error is nil at end of file. A line that does not parse is logged
// and skipped.
func readGuardPipe(pipe io.Reader) (guardRecord, error) {
	rec := guardRecord{phase: "freeze and dump", borrowed: map[int]ptrace.Injection{}} // the guard starts right before the freeze
	r := bufio.NewReader(pipe)
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, string(guardDisarm)) {
			rec.disarmed = true
			return rec, nil
		}
		if text, ok := strings.CutSuffix(line, "\n"); ok {
			if perr := rec.apply(text); perr != nil {
				fmt.Fprintf(os.Stderr, "ksu resume guard: %v\n", perr)
			}
		}
		if errors.Is(err, io.EOF) {
			return rec, nil
		}
		if err != nil {
			return rec, err
		}
	}
}

// apply records one line of the guard's pipe.
func (rec *guardRecord) apply(line string) error {
	if name, ok := strings.CutPrefix(line, guardPhase); ok {
		rec.phase = name
		return nil
	}
	if text, ok := strings.CutPrefix(line, guardBorrow); ok {
		var inj ptrace.Injection
		if err := inj.UnmarshalText([]byte(text)); err != nil {
			return err
		}
		rec.borrowed[inj.TID] = inj
		return nil
	}
	if text, ok := strings.CutPrefix(line, guardReturn); ok {
		tid, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("invalid thread id in %q", line)
		}
		delete(rec.borrowed, tid)
		return nil
	}
	return fmt.Errorf("unknown line %q on the pipe", line)
}

// ownCgroup returns the cgroup v2 directory of this process, or "" if
// it has none.
func ownCgroup() string {
	cgroups, err := procfs.ReadCgroup(procRoot, os.Getpid())
	if err != nil {
		return ""
	}
	path, ok := procfs.UnifiedPath(cgroups)
	if !ok {
		return ""
	}
	return filepath.Join("/sys/fs/cgroup", path)
}

// oomKills returns the oom_kill count of the memory.events file of
// cgroup, or -1 if it cannot be read.
func oomKills(cgroup string) int64 {
	if cgroup == "" {
		return -1
	}
	b, err := os.ReadFile(filepath.Join(cgroup, "memory.events"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// exitCause describes how ksu update ended, from the oom_kill counts of
// its cgroup before and after. The guard is not the parent of ksu
// update, so it cannot read the exit status. A count that grew means that
// the OOM killer killed a process of the cgroup, and the guard is exempt.
func exitCause(cgroup string, before, after int64) string {
	if before >= 0 && after > before {
		return fmt.Sprintf("was killed, most likely by the OOM killer (oom_kill in %s/memory.events went from %d to %d)",
			cgroup, before, after)
	}
	return "exited or was killed by a signal other than the OOM killer's"
}

// wipeSpill zeroes the initramfs file behind spill, which ksu update
// left unwiped when it died, and logs it.
func wipeSpill(spill *os.File) error {
	if err := kexec.WipeFile(spill); err != nil {
		return err
	}
	newSwitchLog().Printf("resume guard: zeroed the initramfs file in %s that ksu update left", spill.Name())
	return nil
}
