package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// Stat holds the fields of /proc/PID/stat that a checkpoint needs,
// numbered in proc(5) order. The kernel prints 0 for the address fields
// (StartCode to EnvEnd) unless the reader may ptrace the process.
type Stat struct {
	Pid int
	// Comm is the command name, without the parentheses.
	Comm    string
	State   byte
	PPid    int
	Pgrp    int
	Session int
	// TTY is the controlling terminal's device number (tty_nr): major in
	// bits 8-15, minor in bits 0-7 and 20-31.
	TTY   int
	Tpgid int
	Flags uint32
	// Utime and Stime are in clock ticks (sysconf(_SC_CLK_TCK)).
	Utime, Stime uint64
	Nice         int
	NumThreads   int
	// StartTime is when the process started, in clock ticks after boot.
	StartTime  uint64
	VSize      uint64
	StartCode  uint64
	EndCode    uint64
	StartStack uint64
	ExitSignal int
	StartData  uint64
	EndData    uint64
	StartBrk   uint64
	ArgStart   uint64
	ArgEnd     uint64
	EnvStart   uint64
	EnvEnd     uint64
	// ExitCode is the wait(2) status of a task that has exited, such as
	// a zombie, and 0 for a live one.
	ExitCode int
}

// ReadStat reads /proc/PID/stat under root.
func ReadStat(root string, pid int) (Stat, error) {
	data, err := readFile(root, pid, "stat")
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(string(data))
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat of process %d: %w", pid, err)
	}
	return st, nil
}

// statFields is the number of fields Linux 3.5 and later print.
const statFields = 52

// ParseStat parses the contents of a stat file.
func ParseStat(data string) (Stat, error) {
	// The command name may contain spaces and parentheses; it ends at
	// the last ')'.
	open := strings.IndexByte(data, '(')
	end := strings.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("invalid stat %q: no command name in parentheses", data)
	}
	rest := strings.Fields(data[end+1:])
	if len(rest)+2 < statFields {
		return Stat{}, fmt.Errorf("invalid stat: %d fields, want at least %d", len(rest)+2, statFields)
	}
	st := Stat{Comm: data[open+1 : end]}
	var err error
	if st.Pid, err = strconv.Atoi(strings.TrimSpace(data[:open])); err != nil {
		return Stat{}, fmt.Errorf("invalid stat pid: %w", err)
	}
	if len(rest[0]) != 1 {
		return Stat{}, fmt.Errorf("invalid stat state %q", rest[0])
	}
	st.State = rest[0][0]
	if err := st.setNumbers(rest); err != nil {
		return Stat{}, fmt.Errorf("invalid stat: %w", err)
	}
	return st, nil
}

// setNumbers parses the numeric fields; rest[0] is field 3 (state).
func (st *Stat) setNumbers(rest []string) error {
	ints := map[int]*int{
		4: &st.PPid, 5: &st.Pgrp, 6: &st.Session, 7: &st.TTY, 8: &st.Tpgid,
		19: &st.Nice, 20: &st.NumThreads, 38: &st.ExitSignal, 52: &st.ExitCode,
	}
	for field, dst := range ints {
		n, err := strconv.Atoi(rest[field-3])
		if err != nil {
			return fmt.Errorf("field %d: %w", field, err)
		}
		*dst = n
	}
	uints := map[int]*uint64{
		14: &st.Utime, 15: &st.Stime, 22: &st.StartTime, 23: &st.VSize,
		26: &st.StartCode, 27: &st.EndCode, 28: &st.StartStack,
		45: &st.StartData, 46: &st.EndData, 47: &st.StartBrk,
		48: &st.ArgStart, 49: &st.ArgEnd, 50: &st.EnvStart, 51: &st.EnvEnd,
	}
	for field, dst := range uints {
		n, err := strconv.ParseUint(rest[field-3], 10, 64)
		if err != nil {
			return fmt.Errorf("field %d: %w", field, err)
		}
		*dst = n
	}
	flags, err := strconv.ParseUint(rest[9-3], 10, 32)
	if err != nil {
		return fmt.Errorf("field 9: %w", err)
	}
	st.Flags = uint32(flags)
	return nil
}
