package procfs

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limit is one resource limit of a process, a line of /proc/PID/limits.
type Limit struct {
	// Name is the limit as the file prints it, such as "Max open files".
	Name string
	// Resource is the RLIMIT_* number of the limit.
	Resource int
	// Soft and Hard are unix.RLIM_INFINITY for "unlimited".
	Soft, Hard uint64
	// Unit is "seconds", "bytes", "files" and so on, empty for the
	// priorities.
	Unit string
}

// limitResources maps the names in the limits file to RLIMIT_* numbers.
var limitResources = map[string]int{
	"Max cpu time":          unix.RLIMIT_CPU,
	"Max file size":         unix.RLIMIT_FSIZE,
	"Max data size":         unix.RLIMIT_DATA,
	"Max stack size":        unix.RLIMIT_STACK,
	"Max core file size":    unix.RLIMIT_CORE,
	"Max resident set":      unix.RLIMIT_RSS,
	"Max processes":         unix.RLIMIT_NPROC,
	"Max open files":        unix.RLIMIT_NOFILE,
	"Max locked memory":     unix.RLIMIT_MEMLOCK,
	"Max address space":     unix.RLIMIT_AS,
	"Max file locks":        unix.RLIMIT_LOCKS,
	"Max pending signals":   unix.RLIMIT_SIGPENDING,
	"Max msgqueue size":     unix.RLIMIT_MSGQUEUE,
	"Max nice priority":     unix.RLIMIT_NICE,
	"Max realtime priority": unix.RLIMIT_RTPRIO,
	"Max realtime timeout":  unix.RLIMIT_RTTIME,
}

// limitNameWidth is the width of the name column ("%-25s ").
const limitNameWidth = 25

// ReadLimits reads /proc/PID/limits under root.
func ReadLimits(root string, pid int) ([]Limit, error) {
	data, err := readFile(root, pid, "limits")
	if err != nil {
		return nil, err
	}
	limits, err := ParseLimits(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse limits of process %d: %w", pid, err)
	}
	return limits, nil
}

// ParseLimits parses the contents of a limits file, skipping its header
// line. It rejects a limit name it does not know, because a limit it
// skipped would silently change on restore.
func ParseLimits(r io.Reader) ([]Limit, error) {
	var limits []Limit
	sc := newScanner(r)
	for first := true; sc.Scan(); first = false {
		if first && strings.HasPrefix(sc.Text(), "Limit ") {
			continue
		}
		l, err := parseLimitLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("invalid limits line %q: %w", sc.Text(), err)
		}
		limits = append(limits, l)
	}
	return limits, sc.Err()
}

func parseLimitLine(line string) (Limit, error) {
	if len(line) < limitNameWidth {
		return Limit{}, fmt.Errorf("shorter than the %d-column name", limitNameWidth)
	}
	l := Limit{Name: strings.TrimRight(line[:limitNameWidth], " ")}
	resource, ok := limitResources[l.Name]
	if !ok {
		return Limit{}, fmt.Errorf("unknown limit %q", l.Name)
	}
	l.Resource = resource
	fields := strings.Fields(line[limitNameWidth:])
	if len(fields) < 2 || len(fields) > 3 {
		return Limit{}, fmt.Errorf("got %d values, want soft, hard and an optional unit", len(fields))
	}
	var err error
	if l.Soft, err = parseLimitValue(fields[0]); err != nil {
		return Limit{}, err
	}
	if l.Hard, err = parseLimitValue(fields[1]); err != nil {
		return Limit{}, err
	}
	if len(fields) == 3 {
		l.Unit = fields[2]
	}
	return l, nil
}

func parseLimitValue(s string) (uint64, error) {
	if s == "unlimited" {
		return unix.RLIM_INFINITY, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
