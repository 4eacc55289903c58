package main

import (
	"path/filepath"

	"github.com/ksu-project/ksu/pkg/procfs"
)

// holdParam names, on the new kernel's command line, the systemd
// services whose every process ksu update preserves. ksu-init keeps
// systemd from starting those again on the new boot, because their
// restored processes already run. A service that keeps processes behind,
// such as a daemon of which only a child was selected, starts as usual.
const holdParam = "ksu.hold"

// maxHoldParam bounds the parameter, because the kernel's command line
// is at most 2048 bytes on x86-64.
const maxHoldParam = 1024

// wholeServices returns the services whose cgroup, with its
// sub-cgroups, holds only processes of the trees rooted at roots.
func (h host) wholeServices(roots []int) []string {
	pids, err := listTrees(roots)
	if err != nil {
		return nil
	}
	selected := map[int]bool{}
	for _, pid := range pids {
		selected[pid] = true
	}
	cgroupRoot, err := h.cgroup2Root()
	if err != nil {
		return nil
	}

	var names []string
	seen := map[string]bool{}
	for _, pid := range pids {
		name, dir, ok := h.serviceOf(pid)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		members, err := walkCgroup(filepath.Join(cgroupRoot, dir))
		if err != nil || len(members) == 0 {
			continue
		}
		whole := true
		for _, m := range members {
			whole = whole && selected[m]
		}
		if whole {
			names = append(names, name)
		}
	}
	return names
}

// serviceOf returns the service whose cgroup process pid is in, and
// that cgroup's path: the first component below the slices.
func (h host) serviceOf(pid int) (name, dir string, ok bool) {
	cgroups, err := procfs.ReadCgroup(h.proc, pid)
	if err != nil {
		return "", "", false
	}
	path, ok := procfs.UnifiedPath(cgroups)
	if !ok {
		return "", "", false
	}
	return procfs.ServiceOf(path)
}

// holdArg returns the holdParam parameter for services, or "" when there
// are none. Names past maxHoldParam bytes are left out, and those
// services start as usual on the new boot.
func holdArg(services []string, log *switchLog) string {
	if len(services) == 0 {
		return ""
	}
	arg := holdParam + "="
	for i, name := range services {
		if len(arg)+len(name)+1 > maxHoldParam {
			log.Printf("warning: %s leaves out services %v: the kernel command line has no room; systemd will start them again",
				holdParam, services[i:])
			break
		}
		if i > 0 {
			arg += ","
		}
		arg += name
	}
	return arg
}
