package procfs

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Cgroup is one line of /proc/PID/cgroup: the process's cgroup in one
// hierarchy.
type Cgroup struct {
	// Hierarchy is the hierarchy id, 0 for the cgroup v2 hierarchy.
	Hierarchy int
	// Controllers are the v1 controllers bound to the hierarchy
	// ("cpu", "name=systemd" and so on), none for v2.
	Controllers []string
	// Path is the cgroup relative to the hierarchy's root, as shown in
	// the reader's cgroup namespace.
	Path string
}

// ReadCgroup reads /proc/PID/cgroup under root.
func ReadCgroup(root string, pid int) ([]Cgroup, error) {
	data, err := readFile(root, pid, "cgroup")
	if err != nil {
		return nil, err
	}
	cgroups, err := ParseCgroup(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse cgroup of process %d: %w", pid, err)
	}
	return cgroups, nil
}

// ParseCgroup parses the contents of a cgroup file,
// "HIERARCHY:CONTROLLERS:PATH" per line. The path may contain ':'.
func ParseCgroup(r io.Reader) ([]Cgroup, error) {
	var cgroups []Cgroup
	sc := newScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("invalid cgroup line %q: want HIERARCHY:CONTROLLERS:PATH", sc.Text())
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("invalid cgroup line %q: %w", sc.Text(), err)
		}
		cg := Cgroup{Hierarchy: id, Path: parts[2]}
		if parts[1] != "" {
			cg.Controllers = strings.Split(parts[1], ",")
		}
		cgroups = append(cgroups, cg)
	}
	return cgroups, sc.Err()
}

// UnifiedPath returns the path of the cgroup v2 entry ("0::PATH") of
// cgroups, and false if there is none.
func UnifiedPath(cgroups []Cgroup) (string, bool) {
	for _, cg := range cgroups {
		if cg.Hierarchy == 0 && len(cg.Controllers) == 0 {
			return cg.Path, true
		}
	}
	return "", false
}

// serviceNameRE matches a service name that systemd accepts: the
// characters of systemd.unit(5) ("Unit names can consist of ...").
var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.service$`)

// maxUnitName is systemd's limit on the length of a unit name.
const maxUnitName = 255

// ServiceOf returns the systemd service whose cgroup contains the cgroup
// v2 group path, and the service's own cgroup: the first component
// below the slices, when it is a .service. A .scope (a login session or
// a systemd-run --scope), a group outside any unit, and the root return
// false.
func ServiceOf(path string) (name, cgroup string, ok bool) {
	components := strings.Split(strings.Trim(path, "/"), "/")
	for i, c := range components {
		if strings.HasSuffix(c, ".slice") {
			continue
		}
		if serviceNameRE.MatchString(c) && len(c) <= maxUnitName {
			return c, "/" + strings.Join(components[:i+1], "/"), true
		}
		return "", "", false
	}
	return "", "", false
}
