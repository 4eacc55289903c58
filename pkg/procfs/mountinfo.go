package procfs

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo.
type Mount struct {
	ID, ParentID int
	Major, Minor uint32
	// Root is the directory of the filesystem that is mounted.
	Root string
	// MountPoint is the mount point, relative to the reader's root.
	MountPoint string
	// Options are the per-mount options, such as "rw,relatime".
	Options string
	// Optional are the optional fields: "shared:N", "master:N",
	// "propagate_from:N" and "unbindable".
	Optional []string
	FSType   string
	Source   string
	// SuperOptions are the per-superblock options.
	SuperOptions string
}

// ReadMountInfo reads /proc/PID/mountinfo under root.
func ReadMountInfo(root string, pid int) ([]Mount, error) {
	data, err := readFile(root, pid, "mountinfo")
	if err != nil {
		return nil, err
	}
	mounts, err := ParseMountInfo(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse mountinfo of process %d: %w", pid, err)
	}
	return mounts, nil
}

// ParseMountInfo parses the contents of a mountinfo file. Paths and the
// source come back with the kernel's octal escapes (\040 for a space and
// so on) undone.
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := newScanner(r)
	for sc.Scan() {
		m, err := parseMountInfoLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("invalid mountinfo line %q: %w", sc.Text(), err)
		}
		mounts = append(mounts, m)
	}
	return mounts, sc.Err()
}

// parseMountInfoLine parses
// "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER".
func parseMountInfoLine(line string) (Mount, error) {
	fields := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(fields) != sep+4 {
		return Mount{}, fmt.Errorf("got %d fields with the separator at %d, want 6 or more, '-' and 3", len(fields), sep)
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(fields[0]); err != nil {
		return Mount{}, err
	}
	if m.ParentID, err = strconv.Atoi(fields[1]); err != nil {
		return Mount{}, err
	}
	if m.Major, m.Minor, err = parseDevice(fields[2], 10); err != nil {
		return Mount{}, err
	}
	m.Root, m.MountPoint, m.Options = unescapeOctal(fields[3]), unescapeOctal(fields[4]), fields[5]
	if sep > 6 {
		m.Optional = fields[6:sep]
	}
	m.FSType, m.Source, m.SuperOptions = unescapeOctal(fields[sep+1]), unescapeOctal(fields[sep+2]), fields[sep+3]
	return m, nil
}

// unescapeOctal undoes the escaping of mangle(): the kernel prints a
// space, tab, newline and backslash in a path as \040, \011, \012 and
// \134. Other backslashes are kept as they are.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
