package dump

import "fmt"

// RejectError is an object that the snapshot cannot hold, found before
// any memory was read.
type RejectError struct {
	PID    int
	Object string // "fd 4", "vma 0x7f00-0x7f10", "thread 123" or "process"
	Kind   string // what the object is, such as "socket" or "shared mapping"
	Reason string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("process %d: %s (%s): %s", e.PID, e.Object, e.Kind, e.Reason)
}

// notYet rejects an object kind that a later version will support.
func notYet(pid int, object, kind string) *RejectError {
	return &RejectError{PID: pid, Object: object, Kind: kind, Reason: "not supported yet"}
}
