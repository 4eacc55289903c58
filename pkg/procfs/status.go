package procfs

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Status holds the fields of /proc/PID/status that a checkpoint needs.
// Fields the running kernel does not print keep their zero value.
type Status struct {
	Name      string
	Umask     uint32
	State     byte
	Tgid      int
	Pid       int
	PPid      int
	TracerPid int
	// Uid and Gid are the real, effective, saved and filesystem ids.
	Uid, Gid [4]uint32
	// Groups are the supplementary group ids.
	Groups []uint32
	// NStgid, NSpid, NSpgid and NSsid list the ids in each pid
	// namespace, from the one of the proc mount to the innermost.
	NStgid, NSpid, NSpgid, NSsid []int
	Threads                      int
	// SigPnd, ShdPnd, SigBlk, SigIgn and SigCgt are signal sets: the
	// thread's and the process's pending signals, the blocked, ignored
	// and caught ones. Bit n-1 stands for signal n.
	SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt uint64
	// CapInh, CapPrm, CapEff, CapBnd and CapAmb are capability sets, bit
	// n standing for capability n.
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                             bool
	// Seccomp is the seccomp mode: 0 disabled, 1 strict, 2 filter.
	Seccomp int
	// SeccompFilters is the number of attached filters (Linux 5.9 and
	// later).
	SeccompFilters int
}

// ReadStatus reads /proc/PID/status under root.
func ReadStatus(root string, pid int) (Status, error) {
	data, err := readFile(root, pid, "status")
	if err != nil {
		return Status{}, err
	}
	st, err := ParseStatus(bytes.NewReader(data))
	if err != nil {
		return Status{}, fmt.Errorf("parse status of process %d: %w", pid, err)
	}
	return st, nil
}

// ParseStatus parses the contents of a status file.
func ParseStatus(r io.Reader) (Status, error) {
	var st Status
	sc := newScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return st, fmt.Errorf("invalid status line %q: no ':'", sc.Text())
		}
		if err := st.set(key, value); err != nil {
			return st, fmt.Errorf("invalid status line %q: %w", sc.Text(), err)
		}
	}
	return st, sc.Err()
}

// set stores one status field, ignoring keys it does not know. Raw is
// the text after the colon.
func (st *Status) set(key, raw string) error {
	if key == "Name" {
		// N.B. A command name may start or end with spaces, so only the
		// tab after the colon is dropped.
		st.Name = unescapeName(strings.TrimPrefix(raw, "\t"))
		return nil
	}
	value := strings.TrimSpace(raw)
	if dst, ok := st.hexFields()[key]; ok {
		return parseHex(value, dst)
	}
	if dst, ok := st.intFields()[key]; ok {
		n, err := strconv.Atoi(value)
		*dst = n
		return err
	}
	if dst, ok := st.listFields()[key]; ok {
		var err error
		*dst, err = parseInts(value)
		return err
	}
	switch key {
	case "Umask":
		n, err := strconv.ParseUint(value, 8, 32)
		st.Umask = uint32(n)
		return err
	case "State":
		if value == "" {
			return fmt.Errorf("empty state")
		}
		st.State = value[0]
	case "Uid":
		return parseIDs(value, st.Uid[:])
	case "Gid":
		return parseIDs(value, st.Gid[:])
	case "Groups":
		return parseGroups(value, &st.Groups)
	case "NoNewPrivs":
		n, err := strconv.Atoi(value)
		st.NoNewPrivs = n != 0
		return err
	}
	return nil
}

func (st *Status) hexFields() map[string]*uint64 {
	return map[string]*uint64{
		"SigPnd": &st.SigPnd, "ShdPnd": &st.ShdPnd, "SigBlk": &st.SigBlk,
		"SigIgn": &st.SigIgn, "SigCgt": &st.SigCgt,
		"CapInh": &st.CapInh, "CapPrm": &st.CapPrm, "CapEff": &st.CapEff,
		"CapBnd": &st.CapBnd, "CapAmb": &st.CapAmb,
	}
}

func (st *Status) intFields() map[string]*int {
	return map[string]*int{
		"Tgid": &st.Tgid, "Pid": &st.Pid, "PPid": &st.PPid,
		"TracerPid": &st.TracerPid, "Threads": &st.Threads,
		"Seccomp": &st.Seccomp, "Seccomp_filters": &st.SeccompFilters,
	}
}

func (st *Status) listFields() map[string]*[]int {
	return map[string]*[]int{
		"NStgid": &st.NStgid, "NSpid": &st.NSpid,
		"NSpgid": &st.NSpgid, "NSsid": &st.NSsid,
	}
}

func parseHex(s string, dst *uint64) error {
	n, err := strconv.ParseUint(s, 16, 64)
	*dst = n
	return err
}

// parseInts parses a tab-separated list of decimal ids.
func parseInts(s string) ([]int, error) {
	fields := strings.Fields(s)
	ids := make([]int, len(fields))
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		ids[i] = n
	}
	return ids, nil
}

// parseIDs parses exactly len(dst) user or group ids.
func parseIDs(s string, dst []uint32) error {
	fields := strings.Fields(s)
	if len(fields) != len(dst) {
		return fmt.Errorf("got %d ids, want %d", len(fields), len(dst))
	}
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return err
		}
		dst[i] = uint32(n)
	}
	return nil
}

func parseGroups(s string, dst *[]uint32) error {
	fields := strings.Fields(s)
	groups := make([]uint32, len(fields))
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return err
		}
		groups[i] = uint32(n)
	}
	*dst = groups
	return nil
}

// unescapeName undoes the escaping of the Name field: the kernel prints
// a backslash as "\\" and a newline as "\n".
func unescapeName(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(s)
}
