package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/ksu-project/ksu/pkg/procfs"
)

// restoredMarkerDir contains one marker file per held unit. While a
// unit's marker exists, the drop-in of holdDropIn makes systemd skip
// starting the unit.
const restoredMarkerDir = "/run/ksu/restored"

// holdDropInName is the drop-in file that holds a unit, in the unit's
// runtime drop-in directory /run/systemd/system/NAME.d.
const holdDropInName = "ksu-restored.conf"

// unitDirs are the directories, below the root, where systemd 252 reads
// the unit files that outlive a reboot (systemd.unit(5), "Unit File Load
// Path", plus Debian's /lib/systemd/system). A service found in none of
// them was transient, such as one that systemd-run created.
var unitDirs = []string{
	"/etc/systemd/system",
	"/etc/systemd/system.attached",
	"/usr/local/lib/systemd/system",
	"/usr/lib/systemd/system",
	"/lib/systemd/system",
}

// sysvInitDir contains the SysV init scripts for which
// systemd-sysv-generator writes a NAME.service at boot.
const sysvInitDir = "/etc/init.d"

// heldUnit is a systemd service whose restored processes still run, and
// which systemd skips starting on this boot. Otherwise systemd would start
// a second instance next to them and, when that start fails, stop the
// unit and so kill the restored processes.
type heldUnit struct {
	Name   string  `json:"name"`
	Cgroup string  `json:"cgroup"`
	PIDs   []int32 `json:"pids"`
	// Marker is the file whose removal lets systemd start the unit
	// again. DropIn is the drop-in whose condition tests for it.
	Marker string `json:"marker"`
	DropIn string `json:"drop_in"`
}

// hasUnitFile reports whether root has a unit file for the service name,
// or for its template, or a SysV init script that systemd turns into it.
func hasUnitFile(root, name string) bool {
	names := []string{name}
	if prefix, _, ok := strings.Cut(name, "@"); ok {
		names = append(names, prefix+"@.service")
	}
	for _, dir := range unitDirs {
		for _, n := range names {
			if _, err := os.Lstat(filepath.Join(root, dir, n)); err == nil {
				return true
			}
		}
	}
	script := filepath.Join(root, sysvInitDir, strings.TrimSuffix(name, ".service"))
	_, err := os.Lstat(script)
	return err == nil
}

// groupByService returns, in the order of pids, the services whose
// cgroups contain the restored processes pids, reading each process's
// cgroup under procDir. Processes outside a service are left out.
func groupByService(log klog.Logger, procDir string, pids []int32) []heldUnit {
	var units []heldUnit
	for _, pid := range pids {
		cgroups, err := procfs.ReadCgroup(procDir, int(pid))
		if err != nil {
			log.Printf("read cgroup of restored process %d: %v", pid, err)
			continue
		}
		cgroup, ok := procfs.UnifiedPath(cgroups)
		if !ok {
			log.Printf("read cgroup of restored process %d: no cgroup v2 entry (0::)", pid)
			continue
		}
		name, unitCgroup, ok := procfs.ServiceOf(cgroup)
		if !ok {
			continue
		}
		i := slices.IndexFunc(units, func(u heldUnit) bool { return u.Name == name })
		if i < 0 {
			units = append(units, heldUnit{Name: name, Cgroup: unitCgroup})
			i = len(units) - 1
		}
		units[i].PIDs = append(units[i].PIDs, pid)
	}
	return units
}

// holdUnits writes, in newRoot, a runtime drop-in and a marker for each
// service in whole (ksu.hold=) that has restored processes pids in its
// cgroup, and returns the services held. A service not in whole had
// processes that ksu update did not preserve, such as its main process
// when only a child was selected, so systemd must start it as usual. A held service is not started on this boot: its
// start is skipped by a failed condition, which leaves it inactive
// without failing the units that require it. systemd then neither starts
// a second instance, which would fail on the resources that the restored
// one holds (a port, a lock file), nor kills the restored processes when
// that start fails. A transient service (systemd-run) is not held,
// since no unit file brings it back after the reboot.
//
// Failures are logged, not returned: the boot goes on, and the restored
// processes run either way.
//
// Limitation: a unit that has BindsTo= and After= on a held service is
// stopped, or not started, because systemd.unit(5) of systemd 252 treats
// a skipped start as inactive for BindsTo=. Restored processes of such a
// dependent keep running, but systemd then owns none of them until the
// operator hands the service back. Holding the dependents as well would
// lift this.
//
// Limitation: processes of a user's systemd instance lie below
// user@UID.service, which is held as a whole, so that user's manager does
// not start on this boot. Holding the user manager's own unit instead
// would need a drop-in in that user's runtime directory.
//
// Preconditions: /proc and /run are moved into newRoot.
func holdUnits(log klog.Logger, newRoot string, pids []int32, whole []string) []heldUnit {
	var held []heldUnit
	for _, u := range groupByService(log, filepath.Join(newRoot, "proc"), pids) {
		if !slices.Contains(whole, u.Name) {
			log.Printf("restored processes %s are in the cgroup of %s, whose other processes were not preserved: systemd starts it as usual",
				joinPIDs(u.PIDs), u.Name)
			continue
		}
		if !hasUnitFile(newRoot, u.Name) {
			log.Printf("restored processes %s are in the cgroup of %s, which has no unit file (a transient unit): nothing to hold",
				joinPIDs(u.PIDs), u.Name)
			continue
		}
		u.Marker = filepath.Join(restoredMarkerDir, u.Name)
		u.DropIn = filepath.Join(runtimeUnitDir, u.Name+".d", holdDropInName)
		if err := writeHold(newRoot, u); err != nil {
			log.Printf("hold %s failed, so systemd may start it next to restored processes %s: %v", u.Name, joinPIDs(u.PIDs), err)
			continue
		}
		log.Printf("held %s for this boot because restored processes %s run in its cgroup (remove %s to let systemd start it)",
			u.Name, joinPIDs(u.PIDs), u.Marker)
		held = append(held, u)
	}
	return held
}

// writeHold writes the marker and the drop-in of u below newRoot.
func writeHold(newRoot string, u heldUnit) error {
	for _, f := range []struct{ path, content string }{
		{u.Marker, holdMarker(u)},
		{u.DropIn, holdDropIn(u)},
	} {
		path := filepath.Join(newRoot, f.path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
		if err := os.WriteFile(path, []byte(f.content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return nil
}

// holdDropIn returns the drop-in that skips starting u while its marker
// exists. A unit name contains no '%' and systemd does not unescape
// condition paths, so the marker path needs no quoting.
func holdDropIn(u heldUnit) string {
	return `# Written by ksu-init for this boot only. Processes ` + joinPIDs(u.PIDs) + ` of this
# unit were restored after a kernel update and still run in its cgroup.
# While the marker exists, systemd skips starting the unit, so that it
# does not start a second instance next to them.
[Unit]
ConditionPathExists=!` + u.Marker + `
`
}

// holdMarker returns the content of u's marker: how to hand the service
// back to systemd.
func holdMarker(u heldUnit) string {
	return fmt.Sprintf(`ksu-init restored processes %s of %s after a kernel update.
systemd does not start %s while this file exists. To hand it back:
stop processes %s, remove this file, then run: systemctl start %s
`, joinPIDs(u.PIDs), u.Name, u.Name, joinPIDs(u.PIDs), u.Name)
}
