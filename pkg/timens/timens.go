// Package timens starts a program in a new time namespace whose
// CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets are set before it runs. The
// restore uses it so that restored processes see their clocks continue
// across a kexec, which restarts both clocks near zero.
package timens

import (
	"fmt"
	"strings"
	"time"

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

// Exec unshares a time namespace with offsets o, set through
// procDir/self/timens_offsets, and execs argv[0] with argv and env into
// it (Linux 6.0 and later move an exec into the namespace). It returns
// only on failure; the process must then not start threads, so the
// caller reports and exits.
//
// Preconditions: the calling goroutine is locked to the main thread,
// because the offsets file belongs to the thread group leader.
func Exec(procDir string, o Offsets, argv, env []string) error {
	path := strings.TrimSuffix(procDir, "/") + "/self/timens_offsets"
	if err := sys.ExecInTimeNamespace(path, []byte(o.Format()), argv[0], argv, env); err != nil {
		return fmt.Errorf("exec %s in a new time namespace: %w", argv[0], err)
	}
	return nil
}
