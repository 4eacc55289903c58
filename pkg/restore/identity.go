package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Identity constants from linux/securebits.h and linux/sched.h.
const (
	secbitNoSetuidFixup = 1 << 2
	schedResetOnFork    = 0x40000000
)

// finishIdentity moves p into its cgroup, sets its oom_score_adj and the
// scheduling attributes of its threads from outside, then injects the
// personality, timer slack, no_new_privs and credentials of every
// thread, the dumpable flag, the child-subreaper flag and the
// parent-death signal. It runs after every other injected call
// that needs the restorer's privileges, because the credentials it sets
// may drop them.
func (rs *restorer) finishIdentity(p *snapshot.Process) error {
	pid, id := int(p.PID), p.Identity
	if err := joinCgroup(pid, id.Cgroup); err != nil {
		return err
	}
	adj := []byte(strconv.Itoa(int(id.OOMScoreAdj)))
	if err := os.WriteFile(fmt.Sprintf("%s/%d/oom_score_adj", procRoot, pid), adj, 0); err != nil {
		return fmt.Errorf("set oom_score_adj %d: %w", id.OOMScoreAdj, err)
	}
	for _, th := range p.Threads {
		if err := rs.setThreadIdentity(pid, th, id); err != nil {
			return fmt.Errorf("set identity of thread %d: %w", th.TID, err)
		}
	}
	// Changing the effective uid resets the dumpable flag, so it comes
	// after the credentials. PR_SET_DUMPABLE accepts only 0 and 1.
	if id.Dumpable == 0 || id.Dumpable == 1 {
		if _, err := rs.t.Syscall(pid, unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uintptr(id.Dumpable)); err != nil {
			return fmt.Errorf("set dumpable %d: %w", id.Dumpable, err)
		}
	}
	return rs.setTreeFlags(p)
}

func (rs *restorer) setThreadIdentity(pid int, th snapshot.Thread, id snapshot.Identity) error {
	tid := int(th.TID)
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(th.SchedPolicy &^ schedResetOnFork),
		Nice: th.Nice, Priority: uint32(th.SchedPriority)}
	if th.SchedPolicy&schedResetOnFork != 0 {
		attr.Flags = unix.SCHED_FLAG_RESET_ON_FORK
	}
	if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
		return fmt.Errorf("set scheduling policy %d priority %d nice %d: %w", th.SchedPolicy, th.SchedPriority, th.Nice, err)
	}
	if _, err := rs.t.Syscall(tid, unix.SYS_PERSONALITY, uintptr(id.Personality)); err != nil {
		return fmt.Errorf("set personality %#x: %w", id.Personality, err)
	}
	if th.TimerSlack != 0 {
		if _, err := rs.t.Syscall(tid, unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, uintptr(th.TimerSlack)); err != nil {
			return fmt.Errorf("set timer slack %d: %w", th.TimerSlack, err)
		}
	}
	if err := rs.setCreds(pid, tid, id); err != nil {
		return err
	}
	if id.NoNewPrivs {
		if _, err := rs.t.Syscall(tid, unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	return nil
}

// setCreds sets the credentials of thread tid, which Linux keeps per
// thread. The order matters: groups and gids while the thread is still
// root; SECBIT_NO_SETUID_FIXUP so that setresuid keeps the capabilities
// needed for the rest; the uids; the bounding set, which needs
// CAP_SETPCAP; the saved securebits; then capset, which may drop
// CAP_SETPCAP; and last the ambient set, which needs the permitted and
// inheritable sets in place.
func (rs *restorer) setCreds(pid, tid int, id snapshot.Identity) error {
	groups := make([]byte, 4*len(id.Groups))
	for i, g := range id.Groups {
		binary.LittleEndian.PutUint32(groups[4*i:], g)
	}
	if err := rs.poke(pid, 0, groups); err != nil {
		return err
	}
	if err := rs.injectAll(tid, []injected{
		{"set supplementary groups", unix.SYS_SETGROUPS, []uintptr{uintptr(len(id.Groups)), uintptr(rs.scratch())}},
		{"set gids", unix.SYS_SETRESGID, []uintptr{uintptr(id.GID), uintptr(id.EGID), uintptr(id.SGID)}},
		{"set fsgid", unix.SYS_SETFSGID, []uintptr{uintptr(id.FSGID)}},
		{"keep capabilities across setresuid", unix.SYS_PRCTL, []uintptr{unix.PR_SET_SECUREBITS, secbitNoSetuidFixup}},
		{"set uids", unix.SYS_SETRESUID, []uintptr{uintptr(id.UID), uintptr(id.EUID), uintptr(id.SUID)}},
		{"set fsuid", unix.SYS_SETFSUID, []uintptr{uintptr(id.FSUID)}},
	}); err != nil {
		return err
	}
	if err := rs.dropBounding(tid, id.CapBounding); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(tid, unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, uintptr(id.Securebits)); err != nil {
		return fmt.Errorf("set securebits %#x: %w", id.Securebits, err)
	}
	if err := rs.capset(pid, tid, id); err != nil {
		return err
	}
	for c := range 64 {
		if id.CapAmbient&(1<<c) == 0 {
			continue
		}
		if _, err := rs.t.Syscall(tid, unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", c, err)
		}
	}
	return nil
}

// injected is one system call to inject, with what it does for errors.
type injected struct {
	what string
	nr   uintptr
	args []uintptr
}

func (rs *restorer) injectAll(tid int, calls []injected) error {
	for _, c := range calls {
		if _, err := rs.t.Syscall(tid, c.nr, c.args...); err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
	}
	return nil
}

// dropBounding removes from the bounding set of tid every capability up
// to /proc/sys/kernel/cap_last_cap that bounding does not contain.
func (rs *restorer) dropBounding(tid int, bounding uint64) error {
	b, err := os.ReadFile(procRoot + "/sys/kernel/cap_last_cap")
	if err != nil {
		return fmt.Errorf("read last capability: %w", err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || last > 63 {
		return fmt.Errorf("read last capability: invalid value %q", b)
	}
	for c := 0; c <= last; c++ {
		if bounding&(1<<c) != 0 {
			continue
		}
		if _, err := rs.t.Syscall(tid, unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c)); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// capset sets the effective, permitted and inheritable sets of tid with
// a version 3 header and two data structs.
func (rs *restorer) capset(pid, tid int, id snapshot.Identity) error {
	b := make([]byte, 8+24)
	le := binary.LittleEndian
	le.PutUint32(b[0:], unix.LINUX_CAPABILITY_VERSION_3)
	for i, shift := range []uint{0, 32} {
		d := b[8+12*i:]
		le.PutUint32(d[0:], uint32(id.CapEffective>>shift))
		le.PutUint32(d[4:], uint32(id.CapPermitted>>shift))
		le.PutUint32(d[8:], uint32(id.CapInheritable>>shift))
	}
	if err := rs.poke(pid, 0, b); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(tid, unix.SYS_CAPSET, uintptr(rs.scratch()), uintptr(rs.scratch()+8)); err != nil {
		return fmt.Errorf("set capabilities effective %#x permitted %#x inheritable %#x: %w",
			id.CapEffective, id.CapPermitted, id.CapInheritable, err)
	}
	return nil
}

// joinCgroup moves process pid into the cgroup v2 group path, which must
// exist. An empty path, from a system without cgroup v2, changes nothing.
func joinCgroup(pid int, path string) error {
	if path == "" {
		return nil
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		return err
	}
	dir := filepath.Join(mnt, path)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("join cgroup %s: %w", path, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("join cgroup %s: %w", path, err)
	}
	return nil
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted in the
// restorer's mount namespace.
func cgroup2Mount() (string, error) {
	mounts, err := procfs.ReadMountInfo(procRoot, os.Getpid())
	if err != nil {
		return "", err
	}
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			return m.MountPoint, nil
		}
	}
	return "", errors.New("join cgroup: no cgroup2 file system is mounted")
}
