package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// freezableTypes are the disk filesystems whose FIFREEZE support ksu
// relies on; others are only synced.
var freezableTypes = map[string]bool{"ext4": true, "ext3": true, "ext2": true, "xfs": true, "btrfs": true, "f2fs": true}

// writableBlockMounts lists one mount point per writable disk filesystem
// (bind mounts of the same filesystem are listed once), in mount order.
func writableBlockMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()

	var mounts []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		device, mountPoint, options, fsType, ok := parseMountinfoLine(sc.Text())
		if !ok || seen[device] || !freezableTypes[fsType] || !hasOption(options, "rw") {
			continue
		}
		seen[device] = true
		mounts = append(mounts, mountPoint)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	return mounts, nil
}

// parseMountinfoLine returns the major:minor, mount point, per-mount
// options and filesystem type of one /proc/PID/mountinfo line
// (proc(5)): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
func parseMountinfoLine(line string) (device, mountPoint, options, fsType string, ok bool) {
	before, after, found := strings.Cut(line, " - ")
	fields, tail := strings.Fields(before), strings.Fields(after)
	if !found || len(fields) < 6 || len(tail) < 1 {
		return "", "", "", "", false
	}
	return fields[2], unescapeOctal(fields[4]), fields[5], tail[0], true
}

// unescapeOctal undoes the \NNN escapes the kernel writes for spaces,
// tabs, newlines and backslashes in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func hasOption(options, want string) bool {
	for _, o := range strings.Split(options, ",") {
		if o == want {
			return true
		}
	}
	return false
}
