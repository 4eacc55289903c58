package workloads

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Needs values that a Desc may list.
const (
	// NeedLoopback marks a workload that talks over 127.0.0.1; run it in a
	// network namespace of its own when the host's loopback is off limits.
	NeedLoopback = "loopback"
	// NeedShell marks a workload that runs /bin/sh with cat, tr and sha256sum.
	NeedShell = "shell"
)

// Desc is the sidecar NAME.desc of a workload.
type Desc struct {
	// Root is whether the workload must run as root.
	Root bool `json:"root"`
	// Xfail is why a checkpoint and restore is expected to fail it, or
	// empty. A workload always passes when nothing is done to it.
	Xfail string `json:"xfail"`
	// XfailKernels holds reasons that apply only on some kernels, keyed by
	// MAJOR.MINOR ("6.1"); on those kernels they replace Xfail.
	XfailKernels map[string]string `json:"xfail_kernels,omitempty"`
	// MinKernel is the oldest kernel release the workload runs on, e.g. "6.1".
	MinKernel string `json:"min_kernel"`
	// Needs lists what the workload needs besides the kernel (NeedLoopback, NeedShell).
	Needs []string `json:"needs"`
}

// Binary is a built workload.
type Binary struct {
	Name string // base name, e.g. "memory"
	Path string // executable
	Desc Desc
}

// ReadDesc reads and validates the NAME.desc file at path.
func ReadDesc(path string) (Desc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Desc{}, fmt.Errorf("read workload desc: %w", err)
	}
	return parseDesc(path, data)
}

func parseDesc(path string, data []byte) (Desc, error) {
	var d Desc
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Desc{}, fmt.Errorf("parse workload desc %s: %w", path, err)
	}
	if _, _, err := parseRelease(d.MinKernel); err != nil {
		return Desc{}, fmt.Errorf("parse workload desc %s: min_kernel: %w", path, err)
	}
	for k := range d.XfailKernels {
		if _, _, err := parseRelease(k); err != nil {
			return Desc{}, fmt.Errorf("parse workload desc %s: xfail_kernels: %w", path, err)
		}
	}
	for _, n := range d.Needs {
		if n != NeedLoopback && n != NeedShell {
			return Desc{}, fmt.Errorf("parse workload desc %s: unknown need %q", path, n)
		}
	}
	return d, nil
}

// parseRelease returns the major and minor number of a release such as "6.1".
func parseRelease(rel string) (major, minor int, err error) {
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		return 0, 0, fmt.Errorf("invalid kernel release %q, want MAJOR.MINOR", rel)
	}
	return major, minor, nil
}

// SupportsKernel reports whether a kernel of release rel (as uname -r
// prints it, e.g. "6.12.117+deb12-cloud-amd64") is at least d.MinKernel.
func (d Desc) SupportsKernel(rel string) (bool, error) {
	wantMajor, wantMinor, err := parseRelease(d.MinKernel)
	if err != nil {
		return false, err
	}
	major, minor, err := parseRelease(rel)
	if err != nil {
		return false, err
	}
	return major > wantMajor || major == wantMajor && minor >= wantMinor, nil
}

// XfailOn returns why a checkpoint and restore is expected to fail the
// workload on a kernel of release rel, or "" if it is expected to pass.
func (d Desc) XfailOn(rel string) string {
	major, minor, err := parseRelease(rel)
	if err != nil {
		return d.Xfail
	}
	for k, reason := range d.XfailKernels {
		kMajor, kMinor, _ := parseRelease(k)
		if kMajor == major && kMinor == minor {
			return reason
		}
	}
	return d.Xfail
}

// List returns the workloads built into dir: every NAME.desc with an
// executable NAME next to it, sorted by name.
func List(dir string) ([]Binary, error) {
	descs, err := filepath.Glob(filepath.Join(dir, "*.desc"))
	if err != nil {
		return nil, fmt.Errorf("list workloads in %s: %w", dir, err)
	}
	sort.Strings(descs)
	var bins []Binary
	for _, p := range descs {
		d, err := ReadDesc(p)
		if err != nil {
			return nil, err
		}
		bin := strings.TrimSuffix(p, ".desc")
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("list workloads: %w", err)
		}
		bins = append(bins, Binary{Name: filepath.Base(bin), Path: bin, Desc: d})
	}
	return bins, nil
}
