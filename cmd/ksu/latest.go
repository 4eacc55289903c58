package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// latestKernel returns the path of the newest kernel dir/vmlinuz-RELEASE,
// newest in Debian version order, when it is newer than the running
// release. It goes by the file names, as Debian's linux-update-symlinks
// does. When no installed kernel is newer it fails rather than go back to
// an older one, which is what an update after apt upgrade expects.
func latestKernel(dir, running string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("list kernels: %w", err)
	}
	best := ""
	for _, e := range entries {
		release, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok || release == "" || release == running || !e.Type().IsRegular() {
			continue
		}
		if best == "" || compareVersions(release, best) > 0 {
			best = release
		}
	}
	switch {
	case best == "":
		return "", fmt.Errorf("no kernel in %s other than the running %s: install a linux-image package, "+
			"or give --kernel", dir, running)
	case compareVersions(best, running) < 0:
		return "", fmt.Errorf("no kernel in %s newer than the running %s: install the new linux-image package, "+
			"or give --kernel %s to switch to the older %s", dir, running, filepath.Join(dir, "vmlinuz-"+best), best)
	}
	return filepath.Join(dir, "vmlinuz-"+best), nil
}

// kernelFlags resolves --kernel and --latest into the kernel's path.
func kernelFlags(kernel string, latest bool) (string, error) {
	if latest && kernel != "" {
		return "", fmt.Errorf("%w: give --kernel or --latest, not both", errUsage)
	}
	if !latest {
		return kernel, nil
	}
	return latestKernel(bootDir, runningRelease())
}

// compareVersions compares two Debian package versions as
// "dpkg --compare-versions" does, returning -1, 0 or 1: epochs by
// number, then the upstream versions, then the revisions, both with
// dpkg's rules (see deb-version(7)). A version that is not well formed
// is compared as it is, like dpkg does with a warning.
func compareVersions(a, b string) int {
	va, vb := parseVersion(a), parseVersion(b)
	if va.epoch != vb.epoch {
		if va.epoch < vb.epoch {
			return -1
		}
		return 1
	}
	if c := compareFragment(va.upstream, vb.upstream); c != 0 {
		return c
	}
	return compareFragment(va.revision, vb.revision)
}

type debVersion struct {
	epoch              uint64
	upstream, revision string
}

// parseVersion splits [epoch:]upstream[-revision]: the epoch ends at the
// first colon, the revision starts after the last hyphen.
func parseVersion(s string) debVersion {
	var v debVersion
	if e, rest, ok := strings.Cut(s, ":"); ok {
		if n, err := strconv.ParseUint(e, 10, 64); err == nil {
			v.epoch, s = n, rest
		}
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		v.upstream, v.revision = s[:i], s[i+1:]
	} else {
		v.upstream = s
	}
	return v
}

// compareFragment compares an upstream version or a revision: in turn a
// run of non-digits, by character order (tilde before everything, even
// the end; letters before other characters), then a run of digits, by
// number.
func compareFragment(a, b string) int {
	for a != "" || b != "" {
		var pa, pb string
		pa, a = splitRun(a, false)
		pb, b = splitRun(b, false)
		if c := compareNonDigits(pa, pb); c != 0 {
			return c
		}
		pa, a = splitRun(a, true)
		pb, b = splitRun(b, true)
		if c := compareDigits(pa, pb); c != 0 {
			return c
		}
	}
	return 0
}

// splitRun splits s after its leading run of digits, or of non-digits.
func splitRun(s string, digits bool) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func compareNonDigits(a, b string) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		oa, ob := charOrder(a, i), charOrder(b, i)
		if oa != ob {
			if oa < ob {
				return -1
			}
			return 1
		}
	}
	return 0
}

// charOrder is the weight of s[i] in dpkg's order; past the end it is 0.
func charOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c == '~':
		return -1
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return int(c)
	default:
		return int(c) + 256
	}
}

// compareDigits compares two runs of digits by value, of any length.
func compareDigits(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
