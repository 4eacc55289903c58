// Package timens starts a program in a new time namespace whose
// CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets are set before it runs. The
// restore uses it so that restored processes see their clocks continue
// across a kexec, which restarts both clocks near zero.
package timens

import (
	"fmt"
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
