// Package failpoint injects failures at named points of a program, for
// tests only. A test sets the environment variable KSU_FAILPOINT to the
// name of one point, and the program's Check call at that point returns
// an error instead of nil. With the suffix ":pause" (KSU_FAILPOINT=NAME:pause)
// Check first prints a line to stderr and sleeps, so that a test can
// kill the program at that point, then returns the error.
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
	if mode == "pause" {
		fmt.Fprintf(os.Stderr, "failpoint %s: pausing for %v, pid %d\n", name, PauseTime, os.Getpid())
		time.Sleep(PauseTime)
	}
	return &Error{Name: name}
}
