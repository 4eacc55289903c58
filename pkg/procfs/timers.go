package procfs

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Timer is one POSIX timer of a process, an entry of /proc/PID/timers.
// The file does not show when the timer expires next: that takes
// timer_gettime inside the process.
type Timer struct {
	ID int
	// Signal is sigev_signo, the signal the timer sends.
	Signal int
	// Value is sigev_value, the value the signal carries.
	Value uint64
	// Notify is the notification method: "signal", "none" or "thread"
	// (the SIGEV_* name without the prefix).
	Notify string
	// ThreadID is true for SIGEV_THREAD_ID timers, which signal the
	// thread NotifyPid instead of the process.
	ThreadID  bool
	NotifyPid int
	ClockID   int
}

// ReadTimers reads /proc/PID/timers under root.
func ReadTimers(root string, pid int) ([]Timer, error) {
	data, err := readFile(root, pid, "timers")
	if err != nil {
		return nil, err
	}
	timers, err := ParseTimers(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse timers of process %d: %w", pid, err)
	}
	return timers, nil
}

// ParseTimers parses the contents of a timers file: for each timer an
// "ID:" line followed by signal, notify and ClockID lines.
func ParseTimers(r io.Reader) ([]Timer, error) {
	var timers []Timer
	sc := newScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return nil, fmt.Errorf("invalid timers line %q: no ':'", sc.Text())
		}
		value = strings.TrimSpace(value)
		if key == "ID" {
			timers = append(timers, Timer{})
		} else if len(timers) == 0 {
			return nil, fmt.Errorf("invalid timers line %q before the first ID", sc.Text())
		}
		if err := timers[len(timers)-1].set(key, value); err != nil {
			return nil, fmt.Errorf("invalid timers line %q: %w", sc.Text(), err)
		}
	}
	return timers, sc.Err()
}

func (tm *Timer) set(key, value string) error {
	var err error
	switch key {
	case "ID":
		tm.ID, err = strconv.Atoi(value)
	case "ClockID":
		tm.ClockID, err = strconv.Atoi(value)
	case "signal":
		// "SIGNO/VALUE", the value in hexadecimal.
		signo, v, ok := strings.Cut(value, "/")
		if !ok {
			return fmt.Errorf("signal %q has no '/'", value)
		}
		if tm.Signal, err = strconv.Atoi(signo); err != nil {
			return err
		}
		tm.Value, err = strconv.ParseUint(v, 16, 64)
	case "notify":
		err = tm.setNotify(value)
	}
	return err
}

// setNotify parses "HOW/pid.N" or "HOW/tid.N".
func (tm *Timer) setNotify(value string) error {
	how, target, ok := strings.Cut(value, "/")
	kind, id, ok2 := strings.Cut(target, ".")
	if !ok || !ok2 || (kind != "pid" && kind != "tid") {
		return fmt.Errorf("notify %q, want HOW/pid.N or HOW/tid.N", value)
	}
	tm.Notify = how
	tm.ThreadID = kind == "tid"
	var err error
	tm.NotifyPid, err = strconv.Atoi(id)
	return err
}
