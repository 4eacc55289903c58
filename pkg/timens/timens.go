// Package timens starts a program in a new time namespace whose
// CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets are set before it runs, and
// reads the offsets of a process's namespace. The restore uses the first
// so that restored processes see their clocks continue across a kexec,
// which restarts both clocks near zero. The dump uses the second to
// record the clocks as processes that an earlier restore put in such a
// namespace read them.
package timens

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/internal/sys"
)

// Offsets are the amounts a time namespace adds to the kernel's clocks.
type Offsets struct {
	Monotonic time.Duration
	Boottime  time.Duration
}

// Format formats o as /proc/PID/timens_offsets expects: one line per
// clock, "name seconds nanoseconds", with 0 <= nanoseconds < 1e9.
func (o Offsets) Format() string {
	var b strings.Builder
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"monotonic", o.Monotonic}, {"boottime", o.Boottime}} {
		sec, nsec := int64(c.d/time.Second), int64(c.d%time.Second)
		if nsec < 0 {
			sec, nsec = sec-1, nsec+int64(time.Second)
		}
		fmt.Fprintf(&b, "%s %d %d\n", c.name, sec, nsec)
	}
	return b.String()
}

// Run unshares a time namespace with offsets o, set through
// procDir/self/timens_offsets, runs argv[0] with argv and env in it and
// waits for it to exit. Only that process and its descendants live in
// the namespace. Afterwards the calling process cannot start threads or
// processes, so the caller reports the result and exits.
//
// Preconditions: the calling goroutine is locked to the main thread,
// because the offsets file belongs to the thread group leader.
func Run(procDir string, o Offsets, argv, env []string) (unix.WaitStatus, error) {
	path := strings.TrimSuffix(procDir, "/") + "/self/timens_offsets"
	ws, err := sys.ForkExecInTimeNamespace(path, []byte(o.Format()), argv[0], argv, env)
	if err != nil {
		return ws, fmt.Errorf("run %s in a new time namespace: %w", argv[0], err)
	}
	return ws, nil
}

// ReadOffsets returns the offsets of the time namespace process pid
// lives in, from procDir/PID/timens_offsets, or zero offsets when the
// kernel has no time namespaces (no timens_offsets file).
//
// The kernel shows there the namespace the process's children enter,
// so ReadOffsets fails for a process that unshared a time namespace and
// has not forked into it since: its own namespace is then another one,
// whose offsets no file shows.
func ReadOffsets(procDir string, pid int) (Offsets, error) {
	dir := fmt.Sprintf("%s/%d", strings.TrimSuffix(procDir, "/"), pid)
	data, err := os.ReadFile(dir + "/timens_offsets")
	if errors.Is(err, fs.ErrNotExist) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return Offsets{}, fmt.Errorf("read time namespace offsets of process %d: %w", pid, statErr)
		}
		return Offsets{}, nil
	}
	if err != nil {
		return Offsets{}, fmt.Errorf("read time namespace offsets of process %d: %w", pid, err)
	}
	own, err := os.Readlink(dir + "/ns/time")
	if err != nil {
		return Offsets{}, fmt.Errorf("read time namespace of process %d: %w", pid, err)
	}
	children, err := os.Readlink(dir + "/ns/time_for_children")
	if err != nil {
		return Offsets{}, fmt.Errorf("read time namespace of process %d: %w", pid, err)
	}
	if own != children {
		return Offsets{}, fmt.Errorf("read time namespace offsets of process %d: it lives in %s, but its children enter %s, and only that namespace's offsets are readable",
			pid, own, children)
	}
	o, err := ParseOffsets(string(data))
	if err != nil {
		return Offsets{}, fmt.Errorf("read time namespace offsets of process %d: %w", pid, err)
	}
	return o, nil
}

// ParseOffsets parses the text of /proc/PID/timens_offsets: one line per
// clock, "name seconds nanoseconds". Clocks other than monotonic and
// boottime are rejected, because a time namespace offsets only those.
func ParseOffsets(text string) (Offsets, error) {
	var o Offsets
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return Offsets{}, fmt.Errorf("parse offset %q: want \"clock seconds nanoseconds\"", line)
		}
		sec, err1 := strconv.ParseInt(f[1], 10, 64)
		nsec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return Offsets{}, fmt.Errorf("parse offset %q: %w", line, err)
		}
		d := time.Duration(sec)*time.Second + time.Duration(nsec)
		switch f[0] {
		case "monotonic":
			o.Monotonic = d
		case "boottime":
			o.Boottime = d
		default:
			return Offsets{}, fmt.Errorf("parse offset %q: unknown clock %q", line, f[0])
		}
	}
	return o, nil
}

// Latest returns, for each clock, the largest offset among the time
// namespaces of processes pids (zero when pids is empty), so that
// processes from all of them, once in one namespace with these offsets,
// see no clock go back.
//
// Limitation: processes from namespaces with smaller offsets see their
// clocks jump forward by the difference, as after a suspend. This
// matters when one update preserves processes that a previous update
// restored together with processes started since. Restoring each time
// namespace of the snapshot as its own namespace would lift it.
func Latest(procDir string, pids []int) (Offsets, error) {
	var latest Offsets
	for i, pid := range pids {
		o, err := ReadOffsets(procDir, pid)
		if err != nil {
			return Offsets{}, err
		}
		if i == 0 {
			latest = o
			continue
		}
		latest.Monotonic = max(latest.Monotonic, o.Monotonic)
		latest.Boottime = max(latest.Boottime, o.Boottime)
	}
	return latest, nil
}
