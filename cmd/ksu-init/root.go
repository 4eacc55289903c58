package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/klog"
	"golang.org/x/sys/unix"
)

// rootKind is the form in which root= names the root device.
type rootKind int

const (
	rootPath     rootKind = iota // /dev/vda1
	rootUUID                     // UUID=, the filesystem UUID
	rootLabel                    // LABEL=, the filesystem label
	rootPartUUID                 // PARTUUID=, the GPT partition GUID or MBR signature-number
	rootDevNum                   // MAJOR:MINOR
)

// rootSpec is a parsed root= value.
type rootSpec struct {
	kind  rootKind
	value string
}

func (s rootSpec) String() string {
	switch s.kind {
	case rootUUID:
		return "UUID=" + s.value
	case rootLabel:
		return "LABEL=" + s.value
	case rootPartUUID:
		return "PARTUUID=" + s.value
	}
	return s.value
}

// parseRootSpec parses root=. The /dev/disk/by-* names that udev would
// create are read as the UUID=, LABEL= and PARTUUID= forms, because no
// udev runs in the initramfs.
func parseRootSpec(s string) (rootSpec, error) {
	for _, p := range []struct {
		prefix string
		kind   rootKind
	}{
		{"UUID=", rootUUID},
		{"LABEL=", rootLabel},
		{"PARTUUID=", rootPartUUID},
		{"/dev/disk/by-uuid/", rootUUID},
		{"/dev/disk/by-label/", rootLabel},
		{"/dev/disk/by-partuuid/", rootPartUUID},
	} {
		if v, ok := strings.CutPrefix(s, p.prefix); ok {
			if v == "" {
				return rootSpec{}, fmt.Errorf("invalid root=%q: empty %s", s, strings.TrimSuffix(p.prefix, "="))
			}
			if p.kind == rootPartUUID && strings.Contains(v, "/") {
				return rootSpec{}, fmt.Errorf("invalid root=%q: PARTUUID with /PARTNROFF= is not supported", s)
			}
			return rootSpec{kind: p.kind, value: v}, nil
		}
	}
	switch {
	case s == "":
		return rootSpec{}, errors.New("no root= on the kernel command line")
	case strings.HasPrefix(s, "/dev/"):
		return rootSpec{kind: rootPath, value: s}, nil
	case isDevNum(s):
		return rootSpec{kind: rootDevNum, value: s}, nil
	}
	return rootSpec{}, fmt.Errorf("invalid root=%q: want /dev/NAME, UUID=, LABEL=, PARTUUID= or MAJOR:MINOR", s)
}

// isDevNum reports whether s is MAJOR:MINOR in decimal.
func isDevNum(s string) bool {
	major, minor, ok := strings.Cut(s, ":")
	_, errMajor := strconv.ParseUint(major, 10, 32)
	_, errMinor := strconv.ParseUint(minor, 10, 32)
	return ok && errMajor == nil && errMinor == nil
}

// blockDev is one entry of /sys/class/block.
type blockDev struct {
	name      string // vda1
	disk      string // the whole disk a partition belongs to (vda); empty for a disk
	partition int    // the partition number; 0 for a disk
}

// deviceFinder looks up block devices in a sysfs tree and their nodes in a
// device directory; tests point both at fakes.
type deviceFinder struct {
	sysRoot string // /sys
	devRoot string // /dev
}

// listBlockDevs returns the block devices that sysfs shows, sorted by name.
func (f deviceFinder) listBlockDevs() ([]blockDev, error) {
	classDir := filepath.Join(f.sysRoot, "class", "block")
	entries, err := os.ReadDir(classDir)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var devs []blockDev
	for _, e := range entries {
		d := blockDev{name: e.Name()}
		data, err := os.ReadFile(filepath.Join(classDir, d.name, "partition"))
		if err == nil {
			d.partition, _ = strconv.Atoi(strings.TrimSpace(string(data)))
			// A partition's sysfs directory sits inside its disk's.
			if real, err := filepath.EvalSymlinks(filepath.Join(classDir, d.name)); err == nil {
				d.disk = filepath.Base(filepath.Dir(real))
			}
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// find returns the device node for spec, or "" if no device matches yet.
func (f deviceFinder) find(spec rootSpec) (string, error) {
	switch spec.kind {
	case rootPath:
		if _, err := os.Stat(spec.value); err != nil {
			return "", nil
		}
		return spec.value, nil
	case rootDevNum:
		return f.findDevNum(spec.value)
	case rootUUID, rootLabel:
		return f.findFS(spec)
	case rootPartUUID:
		return f.findPartUUID(spec.value)
	}
	return "", fmt.Errorf("find root device: unknown kind of root= %v", spec)
}

// findDevNum maps MAJOR:MINOR to a node through /sys/dev/block.
func (f deviceFinder) findDevNum(num string) (string, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(f.sysRoot, "dev", "block", num))
	if err != nil {
		return "", nil
	}
	return f.node(filepath.Base(real)), nil
}

// findFS returns the first device whose filesystem has the UUID or label.
func (f deviceFinder) findFS(spec rootSpec) (string, error) {
	devs, err := f.listBlockDevs()
	if err != nil {
		return "", err
	}
	for _, d := range devs {
		info, ok := f.probe(d.name)
		if !ok {
			continue
		}
		if spec.kind == rootUUID && equalID(info.uuid, spec.value) ||
			spec.kind == rootLabel && info.label == spec.value {
			return f.node(d.name), nil
		}
	}
	return "", nil
}

// probe reads the superblock of a device; unreadable devices (an empty
// CD drive, a device going away) are skipped.
func (f deviceFinder) probe(name string) (fsInfo, bool) {
	dev, err := os.Open(f.node(name))
	if err != nil {
		return fsInfo{}, false
	}
	defer dev.Close()
	return probeFS(dev)
}

// findPartUUID reads the partition table of every disk that has
// partitions and returns the partition with the PARTUUID.
func (f deviceFinder) findPartUUID(want string) (string, error) {
	devs, err := f.listBlockDevs()
	if err != nil {
		return "", err
	}
	parts := make(map[string][]blockDev) // disk -> its partitions
	for _, d := range devs {
		if d.disk != "" {
			parts[d.disk] = append(parts[d.disk], d)
		}
	}
	for disk, ps := range parts {
		var numbers []int
		for _, p := range ps {
			numbers = append(numbers, p.partition)
		}
		ids, err := f.readPartUUIDs(disk, numbers)
		if err != nil {
			continue
		}
		for _, p := range ps {
			if equalID(ids[p.partition], want) {
				return f.node(p.name), nil
			}
		}
	}
	return "", nil
}

func (f deviceFinder) readPartUUIDs(disk string, numbers []int) (map[int]string, error) {
	dev, err := os.Open(f.node(disk))
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	sectorSize := int64(512)
	data, err := os.ReadFile(filepath.Join(f.sysRoot, "class", "block", disk, "queue", "logical_block_size"))
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && n >= 512 {
			sectorSize = n
		}
	}
	return partUUIDs(dev, sectorSize, numbers)
}

func (f deviceFinder) node(name string) string {
	return filepath.Join(f.devRoot, name)
}

// rootPollInterval is how often waitForRoot looks for the root device.
const rootPollInterval = 50 * time.Millisecond

// waitForRoot polls until the root device appears or timeout passes. On a
// timeout the error lists the block devices that did appear, which is
// usually enough to spot a missing driver or a wrong root=.
func waitForRoot(log klog.Logger, f deviceFinder, spec rootSpec, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		dev, err := f.find(spec)
		if err != nil {
			return "", err
		}
		if dev != "" {
			return dev, nil
		}
		if attempt == 0 {
			log.Printf("waiting up to %v for root device %v", timeout, spec)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("find root device %v: timed out after %v; block devices present: %s (set ksu.rootwait=SECONDS to wait longer)",
				spec, timeout, f.describeBlockDevs())
		}
		time.Sleep(rootPollInterval)
	}
}

// describeBlockDevs lists the block devices with their filesystems.
func (f deviceFinder) describeBlockDevs() string {
	devs, err := f.listBlockDevs()
	if err != nil {
		return err.Error()
	}
	if len(devs) == 0 {
		return "none"
	}
	var out []string
	for _, d := range devs {
		if info, ok := f.probe(d.name); ok {
			out = append(out, fmt.Sprintf("%s (%s UUID=%s LABEL=%q)", d.name, info.fsType, info.uuid, info.label))
		} else {
			out = append(out, d.name)
		}
	}
	return strings.Join(out, ", ")
}

// defaultFSTypes are tried, in order, when rootfstype= is not given.
var defaultFSTypes = []string{"ext4", "xfs", "btrfs"}

// fsTypeCandidates returns the filesystem types to try: rootfstype= if
// given, otherwise the probed type first and then defaultFSTypes.
func fsTypeCandidates(fromCmdline []string, probed string) []string {
	if len(fromCmdline) > 0 {
		return fromCmdline
	}
	types := slices.Clone(defaultFSTypes)
	if probed != "" {
		types = slices.DeleteFunc(types, func(t string) bool { return t == probed })
		types = append([]string{probed}, types...)
	}
	return types
}

// mountRootFS mounts dev on target with the first filesystem type that
// works and returns that type.
func mountRootFS(dev, target string, types []string, flags uintptr, data string) (string, error) {
	var errs []error
	for _, t := range types {
		err := unix.Mount(dev, target, t, flags, data)
		if err == nil {
			return t, nil
		}
		errs = append(errs, fmt.Errorf("as %s: %w", t, err))
	}
	return "", fmt.Errorf("mount root %s on %s (flags %#x, data %q): %w", dev, target, flags, data, errors.Join(errs...))
}
