package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one virtual memory area, a line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Perms      Perms
	// Offset is the offset in the mapped file, in bytes. For anonymous
	// mappings the kernel prints the page offset of Start instead.
	Offset       uint64
	Major, Minor uint32
	Inode        uint64
	// Path is the file path or the kernel's name for the area ("[heap]",
	// "[stack]", "[vdso]", "[anon:NAME]" and so on), empty for plain
	// anonymous memory. The kernel appends " (deleted)" to unlinked
	// files and prints a newline in a name as "\012"; Path keeps both as
	// printed.
	Path string
}

// Size returns the length of the area in bytes.
func (m *Mapping) Size() uint64 { return m.End - m.Start }

// Perms is the permission column of a maps line, such as "r-xp".
type Perms struct {
	Read, Write, Exec bool
	// Shared is true for MAP_SHARED ('s') and false for MAP_PRIVATE
	// ('p').
	Shared bool
}

// Prot returns the PROT_* flags of the permissions.
func (p Perms) Prot() int {
	prot := unix.PROT_NONE
	if p.Read {
		prot |= unix.PROT_READ
	}
	if p.Write {
		prot |= unix.PROT_WRITE
	}
	if p.Exec {
		prot |= unix.PROT_EXEC
	}
	return prot
}

// String returns the permissions as maps prints them.
func (p Perms) String() string {
	b := []byte("---p")
	if p.Read {
		b[0] = 'r'
	}
	if p.Write {
		b[1] = 'w'
	}
	if p.Exec {
		b[2] = 'x'
	}
	if p.Shared {
		b[3] = 's'
	}
	return string(b)
}

func parsePerms(s string) (Perms, error) {
	if len(s) != 4 {
		return Perms{}, fmt.Errorf("invalid permissions %q", s)
	}
	var p Perms
	for i, flag := range []struct {
		set  byte
		dest *bool
	}{{'r', &p.Read}, {'w', &p.Write}, {'x', &p.Exec}, {'s', &p.Shared}} {
		switch s[i] {
		case flag.set:
			*flag.dest = true
		case '-', 'p':
			if (s[i] == 'p') != (i == 3) {
				return Perms{}, fmt.Errorf("invalid permissions %q", s)
			}
		default:
			return Perms{}, fmt.Errorf("invalid permissions %q", s)
		}
	}
	return p, nil
}

// ReadMaps reads /proc/PID/maps under root.
func ReadMaps(root string, pid int) ([]Mapping, error) {
	data, err := readFile(root, pid, "maps")
	if err != nil {
		return nil, err
	}
	maps, err := ParseMaps(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse maps of process %d: %w", pid, err)
	}
	return maps, nil
}

// ParseMaps parses the contents of a maps file.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	var maps []Mapping
	sc := newScanner(r)
	for sc.Scan() {
		m, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	return maps, sc.Err()
}

// parseMapsLine parses "START-END PERMS OFFSET MAJOR:MINOR INODE [PATH]".
// The kernel pads the inode column with spaces before the path, and a
// path may itself contain spaces, so the path is everything after the
// padding.
func parseMapsLine(line string) (Mapping, error) {
	var fields [5]string
	rest := cutFields(line, fields[:])
	m, err := parseMapsFields(fields)
	if err != nil {
		return Mapping{}, fmt.Errorf("invalid maps line %q: %w", line, err)
	}
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}

func parseMapsFields(f [5]string) (Mapping, error) {
	var m Mapping
	var err error
	start, end, ok := strings.Cut(f[0], "-")
	if !ok {
		return m, fmt.Errorf("address range %q has no '-'", f[0])
	}
	if m.Start, err = strconv.ParseUint(start, 16, 64); err != nil {
		return m, err
	}
	if m.End, err = strconv.ParseUint(end, 16, 64); err != nil {
		return m, err
	}
	if m.End < m.Start {
		return m, fmt.Errorf("address range %q ends before it starts", f[0])
	}
	if m.Perms, err = parsePerms(f[1]); err != nil {
		return m, err
	}
	if m.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return m, err
	}
	if m.Major, m.Minor, err = parseDevice(f[3], 16); err != nil {
		return m, err
	}
	m.Inode, err = strconv.ParseUint(f[4], 10, 64)
	return m, err
}

// parseDevice parses "MAJOR:MINOR" in the given base.
func parseDevice(s string, base int) (major, minor uint32, err error) {
	majorText, minorText, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("device %q has no ':'", s)
	}
	ma, err := strconv.ParseUint(majorText, base, 32)
	if err != nil {
		return 0, 0, err
	}
	mi, err := strconv.ParseUint(minorText, base, 32)
	if err != nil {
		return 0, 0, err
	}
	return uint32(ma), uint32(mi), nil
}

// cutFields stores the first len(fields) space-separated fields of line
// in fields and returns the rest of the line after them, starting with
// the space that ended the last field. Missing fields stay empty.
func cutFields(line string, fields []string) string {
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		fields[i], rest = rest[:end], rest[end:]
	}
	return rest
}

// newScanner returns a line scanner that accepts lines up to 1 MiB,
// enough for a maps line with a PATH_MAX path or a long Groups line.
func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return sc
}
