package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// FDInfo holds /proc/PID/fdinfo/FD: the fields every descriptor has,
// and those of the kind of file it refers to. Only one kind pointer is
// set, or none for a plain file, pipe or socket.
type FDInfo struct {
	// Pos is the file offset.
	Pos int64
	// Flags are the open flags (O_*), as open(2) takes them.
	Flags int
	// MntID is the id of the mount that holds the file, as in
	// mountinfo.
	MntID int
	// Ino is the inode number (Linux 5.14 and later).
	Ino uint64
	// Locks are the file's lock lines, as /proc/locks prints them.
	Locks []string

	Eventfd  *EventfdInfo
	Timerfd  *TimerfdInfo
	Signalfd *SignalfdInfo
	// Epoll lists the targets of an epoll instance, in the kernel's
	// order. An instance without targets prints no line of its own, so
	// only the descriptor's link (anon_inode:[eventpoll]) identifies it.
	Epoll []EpollTarget
	Pidfd *PidfdInfo
}

// EventfdInfo is the state of an eventfd.
type EventfdInfo struct {
	Count     uint64
	Semaphore bool
	// SemaphoreShown is set when the kernel printed the
	// eventfd-semaphore line; older kernels (6.1 among them) do not,
	// and Semaphore is then unknown.
	SemaphoreShown bool
}

// TimerfdInfo is the state of a timerfd. Value is the time left until
// the next expiry, relative even for a TFD_TIMER_ABSTIME timer.
type TimerfdInfo struct {
	ClockID int
	// Ticks is the number of expirations not yet read.
	Ticks uint64
	// SettimeFlags are the TFD_TIMER_* flags of the last timerfd_settime.
	SettimeFlags    int
	Value, Interval Timespec
}

// Timespec is a time in seconds and nanoseconds.
type Timespec struct {
	Sec, Nsec int64
}

// SignalfdInfo is the state of a signalfd.
type SignalfdInfo struct {
	// Sigmask is the set of signals the descriptor accepts, bit n-1
	// standing for signal n.
	Sigmask uint64
}

// EpollTarget is one file an epoll instance watches.
type EpollTarget struct {
	// FD is the descriptor number the target was added under.
	FD     int
	Events uint32
	Data   uint64
	// Pos is the target file's offset.
	Pos int64
	// Ino and Dev identify the target file, Dev in the kernel's
	// internal encoding (major << 20 | minor).
	Ino uint64
	Dev uint32
}

// PidfdInfo is the process a pidfd refers to.
type PidfdInfo struct {
	// Pid is -1 when the process has exited and been reaped.
	Pid int
	// NSpid lists the process's ids from the reader's pid namespace to
	// the innermost.
	NSpid []int
}

// ReadFDInfo reads /proc/PID/fdinfo/FD under root.
func ReadFDInfo(root string, pid, fd int) (FDInfo, error) {
	data, err := readFile(root, pid, "fdinfo/"+strconv.Itoa(fd))
	if err != nil {
		return FDInfo{}, err
	}
	info, err := ParseFDInfo(bytes.NewReader(data))
	if err != nil {
		return FDInfo{}, fmt.Errorf("parse fdinfo of fd %d of process %d: %w", fd, pid, err)
	}
	return info, nil
}

// ParseFDInfo parses the contents of an fdinfo file. It rejects inotify
// and fanotify descriptors with an error wrapping errors.ErrUnsupported,
// because their watches cannot be recreated from what fdinfo shows.
func ParseFDInfo(r io.Reader) (FDInfo, error) {
	var info FDInfo
	sc := newScanner(r)
	for sc.Scan() {
		line := sc.Text()
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return info, fmt.Errorf("invalid fdinfo line %q: no ':'", line)
		}
		if err := info.set(key, strings.TrimSpace(value), line); err != nil {
			return info, fmt.Errorf("invalid fdinfo line %q: %w", line, err)
		}
	}
	return info, sc.Err()
}

// set stores one fdinfo line, ignoring keys it does not know.
func (info *FDInfo) set(key, value, line string) error {
	switch {
	case strings.HasPrefix(key, "inotify") || strings.HasPrefix(key, "fanotify"):
		return fmt.Errorf("%s descriptors: %w", strings.Fields(key)[0], errors.ErrUnsupported)
	case key == "tfd":
		return info.addEpollTarget(line)
	case key == "lock":
		info.Locks = append(info.Locks, value)
		return nil
	case strings.HasPrefix(key, "eventfd-"):
		return info.setEventfd(key, value)
	case key == "clockid" || key == "ticks" || key == "settime flags" || strings.HasPrefix(key, "it_"):
		return info.setTimerfd(key, value)
	}
	var err error
	switch key {
	case "pos":
		info.Pos, err = strconv.ParseInt(value, 10, 64)
	case "flags":
		var n uint64
		n, err = strconv.ParseUint(value, 8, 32)
		info.Flags = int(n)
	case "mnt_id":
		info.MntID, err = strconv.Atoi(value)
	case "ino":
		info.Ino, err = strconv.ParseUint(value, 10, 64)
	case "sigmask":
		info.Signalfd = &SignalfdInfo{}
		info.Signalfd.Sigmask, err = strconv.ParseUint(value, 16, 64)
	case "Pid", "NSpid":
		err = info.setPidfd(key, value)
	}
	return err
}

func (info *FDInfo) setEventfd(key, value string) error {
	if info.Eventfd == nil {
		info.Eventfd = &EventfdInfo{}
	}
	switch key {
	case "eventfd-count":
		n, err := strconv.ParseUint(value, 16, 64)
		info.Eventfd.Count = n
		return err
	case "eventfd-semaphore":
		n, err := strconv.Atoi(value)
		info.Eventfd.Semaphore = n != 0
		info.Eventfd.SemaphoreShown = true
		return err
	}
	return nil
}

func (info *FDInfo) setTimerfd(key, value string) error {
	if info.Timerfd == nil {
		info.Timerfd = &TimerfdInfo{}
	}
	tfd := info.Timerfd
	var err error
	switch key {
	case "clockid":
		tfd.ClockID, err = strconv.Atoi(value)
	case "ticks":
		tfd.Ticks, err = strconv.ParseUint(value, 10, 64)
	case "settime flags":
		var n uint64
		n, err = strconv.ParseUint(value, 8, 32)
		tfd.SettimeFlags = int(n)
	case "it_value":
		tfd.Value, err = parseTimespecPair(value)
	case "it_interval":
		tfd.Interval, err = parseTimespecPair(value)
	}
	return err
}

// parseTimespecPair parses "(SEC, NSEC)".
func parseTimespecPair(s string) (Timespec, error) {
	inner, ok := strings.CutPrefix(s, "(")
	inner, ok2 := strings.CutSuffix(inner, ")")
	sec, nsec, ok3 := strings.Cut(inner, ",")
	if !ok || !ok2 || !ok3 {
		return Timespec{}, fmt.Errorf("invalid time %q, want (SEC, NSEC)", s)
	}
	var ts Timespec
	var err error
	if ts.Sec, err = strconv.ParseInt(strings.TrimSpace(sec), 10, 64); err != nil {
		return Timespec{}, err
	}
	ts.Nsec, err = strconv.ParseInt(strings.TrimSpace(nsec), 10, 64)
	return ts, err
}

func (info *FDInfo) setPidfd(key, value string) error {
	if info.Pidfd == nil {
		info.Pidfd = &PidfdInfo{}
	}
	var err error
	if key == "Pid" {
		info.Pidfd.Pid, err = strconv.Atoi(value)
	} else {
		info.Pidfd.NSpid, err = parseInts(value)
	}
	return err
}

// addEpollTarget parses
// "tfd: FD events: HEX data: HEX  pos:N ino:HEX sdev:HEX".
func (info *FDInfo) addEpollTarget(line string) error {
	fields := strings.Fields(strings.ReplaceAll(line, ":", ": "))
	values := make(map[string]string)
	for i := 0; i+1 < len(fields); i += 2 {
		values[strings.TrimSuffix(fields[i], ":")] = fields[i+1]
	}
	var tgt EpollTarget
	var errs [6]error
	tgt.FD, errs[0] = strconv.Atoi(values["tfd"])
	events, err := strconv.ParseUint(values["events"], 16, 32)
	tgt.Events, errs[1] = uint32(events), err
	tgt.Data, errs[2] = strconv.ParseUint(values["data"], 16, 64)
	tgt.Pos, errs[3] = strconv.ParseInt(values["pos"], 10, 64)
	tgt.Ino, errs[4] = strconv.ParseUint(values["ino"], 16, 64)
	dev, err := strconv.ParseUint(values["sdev"], 16, 32)
	tgt.Dev, errs[5] = uint32(dev), err
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	info.Epoll = append(info.Epoll, tgt)
	return nil
}
