package procfs

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// SmapsMapping is one area of /proc/PID/smaps: its maps line, its
// memory counters and its VmFlags.
type SmapsMapping struct {
	Mapping
	// Sizes holds the counters printed in kB (Rss, Pss, Anonymous, Swap,
	// Locked and so on), converted to bytes and keyed by their names.
	Sizes map[string]uint64
	// VmFlags are the two-letter codes of the VmFlags line, such as
	// "dd" (MADV_DONTDUMP), "dc" (MADV_DONTFORK), "wf"
	// (MADV_WIPEONFORK), "hg" and "nh" (MADV_HUGEPAGE and
	// MADV_NOHUGEPAGE), "mg" (MADV_MERGEABLE), "sr" and "rr"
	// (MADV_SEQUENTIAL and MADV_RANDOM) and "lo" (mlock).
	VmFlags []string
}

// HasFlag reports whether the area's VmFlags include flag.
func (m *SmapsMapping) HasFlag(flag string) bool {
	return slices.Contains(m.VmFlags, flag)
}

// ReadSmaps reads /proc/PID/smaps under root.
func ReadSmaps(root string, pid int) ([]SmapsMapping, error) {
	data, err := readFile(root, pid, "smaps")
	if err != nil {
		return nil, err
	}
	maps, err := ParseSmaps(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse smaps of process %d: %w", pid, err)
	}
	return maps, nil
}

// ParseSmaps parses the contents of an smaps file. Lines that are
// neither a maps line, a kB counter nor VmFlags (THPeligible,
// ProtectionKey) are skipped.
func ParseSmaps(r io.Reader) ([]SmapsMapping, error) {
	var maps []SmapsMapping
	sc := newScanner(r)
	for sc.Scan() {
		line := sc.Text()
		first, _, _ := strings.Cut(line, " ")
		if !strings.HasSuffix(first, ":") {
			m, err := parseMapsLine(line)
			if err != nil {
				return nil, err
			}
			maps = append(maps, SmapsMapping{Mapping: m, Sizes: make(map[string]uint64)})
			continue
		}
		if len(maps) == 0 {
			return nil, fmt.Errorf("invalid smaps line %q before the first area", line)
		}
		if err := maps[len(maps)-1].setField(strings.TrimSuffix(first, ":"), line[len(first):]); err != nil {
			return nil, fmt.Errorf("invalid smaps line %q: %w", line, err)
		}
	}
	return maps, sc.Err()
}

func (m *SmapsMapping) setField(key, value string) error {
	fields := strings.Fields(value)
	if key == "VmFlags" {
		m.VmFlags = fields
		return nil
	}
	if len(fields) != 2 || fields[1] != "kB" {
		return nil
	}
	n, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return err
	}
	if n > ^uint64(0)/1024 {
		return fmt.Errorf("%s of %d kB overflows", key, n)
	}
	m.Sizes[key] = n * 1024
	return nil
}
