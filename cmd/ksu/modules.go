package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ksu-project/ksu/pkg/initramfs"
)

// appendModules writes to w a newc archive of the modules the new kernel
// needs before its root filesystem is mounted: the drivers of the
// devices this machine has (matched by modalias, as udev would) and the
// root filesystem's module. It returns the number of modules.
//
// Limitation: every device's modalias is used, not only those on the
// path to the root disk and the network interfaces, so the archive
// holds drivers ksu-init does not need (a few hundred KiB more, and a
// slower module stage). Walking /sys/class/block and /sys/class/net up
// to their buses would trim it.
func appendModules(w io.Writer, dir, release string) (int, error) {
	idx, err := initramfs.LoadIndex(dir)
	if err != nil {
		return 0, err
	}
	aliases, err := initramfs.DeviceModaliases("/sys")
	if err != nil {
		return 0, err
	}
	names, err := rootFSModules()
	if err != nil {
		return 0, err
	}
	mods, err := idx.Resolve(names, aliases)
	if err != nil {
		return 0, fmt.Errorf("resolve modules of kernel %s: %w", release, err)
	}
	return len(mods), initramfs.WriteModulesArchive(w, release, mods...)
}

// rootFSModules returns the module name of the root filesystem's type.
func rootFSModules() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("find root filesystem type: %w", err)
	}
	var fsType string
	for _, line := range strings.Split(string(data), "\n") {
		if _, mountPoint, _, t, ok := parseMountinfoLine(line); ok && mountPoint == "/" {
			fsType = t
		}
	}
	if fsType == "" {
		return nil, fmt.Errorf("find root filesystem type: no / in /proc/self/mountinfo")
	}
	return []string{fsType}, nil
}
