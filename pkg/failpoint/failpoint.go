// Package failpoint injects failures at named points of a program, for
// tests only. A test sets the environment variable KSU_FAILPOINT to the
// name of one point, and the program's Check call at that point returns
// an error instead of nil. With the suffix ":pause" (KSU_FAILPOINT=NAME:pause)
// Check first logs a line with the process's pid to the kernel log and
// sleeps, so that a test can kill the program at that point, then
// returns the error. With the suffix ":panic", Check panics with the
// error instead.
//
// Production code calls Check at phase boundaries where a failure must
// leave the machine as it was. With KSU_FAILPOINT unset, Check costs one
// environment lookup and returns nil.
package failpoint

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// EnvVar is the environment variable that selects the failing point.
const EnvVar = "KSU_FAILPOINT"

// PauseTime bounds the sleep of a ":pause" point.
const PauseTime = 5 * time.Minute

// Error is the injected failure. Name is the point that failed.
type Error struct {
	Name string
}

func (e *Error) Error() string {
	return fmt.Sprintf("injected failure at failpoint %q (%s=%s)", e.Name, EnvVar, os.Getenv(EnvVar))
}

// Check returns an *Error if KSU_FAILPOINT selects name, and nil
// otherwise.
func Check(name string) error {
	point, mode, _ := strings.Cut(os.Getenv(EnvVar), ":")
	if point == "" || point != name {
		return nil
	}
	switch mode {
	case "pause":
		announce(fmt.Sprintf("failpoint %s: pausing for %v, pid %d", name, PauseTime, os.Getpid()))
		time.Sleep(PauseTime)
	case "panic":
		panic(&Error{Name: name})
	}
	return &Error{Name: name}
}

// announce writes msg to the kernel log, at notice level, or to stderr if
// /dev/kmsg cannot be opened. The kernel log comes first because stderr
// may be a file on a filesystem that the program froze, where a write
// blocks until the thaw.
func announce(msg string) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, msg)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "<5>%s\n", msg); err != nil {
		fmt.Fprintln(os.Stderr, msg)
	}
}
