package main

import (
	"errors"
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
	mods, err := idx.Resolve(append(names, networkModules...), aliases)
	if errors.Is(err, initramfs.ErrUnknownModule) {
		// Limitation: a kernel without nf_tables boots without the
		// packet drop, so a peer's retransmission that arrives before
		// the restore gets a reset and the connection is lost.
		fmt.Fprintf(os.Stderr, "ksu: kernel %s has no nf_tables, preserved connections may be reset: %v\n", release, err)
		mods, err = idx.Resolve(names, aliases)
	}
	if err != nil {
		return 0, fmt.Errorf("resolve modules of kernel %s: %w", release, err)
	}
	return len(mods), initramfs.WriteModulesArchive(w, release, mods...)
}

// networkModules are the modules ksu-init needs to drop the packets of
// preserved TCP connections until the restore rebuilds their sockets
// (see pkg/netlock). nf_tables brings its own dependencies (nfnetlink)
// and holds the inet family, the filter chain type and the payload,
// meta and cmp expressions that the drop rules use.
var networkModules = []string{"nf_tables"}

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
