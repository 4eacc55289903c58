package dump

import (
	"errors"
	"fmt"
)

// RejectError is an object that the snapshot cannot hold, found before
// any memory was read.
type RejectError struct {
	PID    int
	Object string // "fd 4", "vma 0x7f00-0x7f10", "thread 123" or "process"
	Kind   string // what the object is, such as "socket" or "shared mapping"
	Reason string
	// Transient is set when the object may be gone a moment later, such
	// as connections that wait in a listener's accept queue: a new dump
	// may then succeed.
	Transient bool
}

// IsTransient reports whether err rejects an object that may be gone a
// moment later (RejectError.Transient).
func IsTransient(err error) bool {
	var re *RejectError
	return errors.As(err, &re) && re.Transient
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("process %d: %s (%s): %s", e.PID, e.Object, e.Kind, e.Reason)
}

// notYet rejects an object kind that a later version will support.
func notYet(pid int, object, kind string) *RejectError {
	return &RejectError{PID: pid, Object: object, Kind: kind, Reason: "not supported yet"}
}
