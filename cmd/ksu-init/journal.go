package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ksu-project/ksu/pkg/klog"
)

// recordUnitName is the unit that runs "ksu status --record" on the boot
// after an update. cmd/ksu documents it under the same name.
const recordUnitName = "ksu-record.service"

// runtimeUnitDir is systemd's directory for units that last one boot
// (systemd.unit(5)). It lives in the /run tmpfs that ksu-init moves into
// the new root, so the unit is gone at the next boot and no
// configuration of the machine changes.
const runtimeUnitDir = "/run/systemd/system"

// ksuCandidates are the paths of the ksu command in the root, tried in
// order.
var ksuCandidates = []string{"/usr/sbin/ksu", "/usr/local/sbin/ksu", "/usr/bin/ksu", "/usr/local/bin/ksu"}

// recordUnit returns the unit file that runs "ksu status --record" once:
// it copies the report to /var/log/ksu, and its output goes to the
// journal under the identifier ksu.
func recordUnit(ksu string) string {
	return `# Installed by ksu-init for this boot only.
[Unit]
Description=Record the report of the kernel update by ksu
Documentation=man:ksu(8)
ConditionPathExists=` + reportFile + `
RequiresMountsFor=/var/log

[Service]
Type=oneshot
ExecStart=` + ksu + ` status --record
SyslogIdentifier=ksu
`
}

// installRecordUnit writes recordUnitName into newRoot's runtimeUnitDir
// and enables it for multi-user.target, if newRoot has a report and a ksu
// command. A failure is logged, never returned: the boot goes on, and
// the operator can still run "ksu status".
//
// Preconditions: /run is already moved into newRoot, which is true
// whenever newRoot has a report (restore moves it before writing one).
func installRecordUnit(log klog.Logger, newRoot string) {
	if _, err := os.Stat(filepath.Join(newRoot, reportFile)); err != nil {
		return
	}
	ksu, err := findInit(newRoot, ksuCandidates)
	if err != nil {
		log.Printf("no ksu command in the root, so the report is not recorded in the journal: %v", err)
		return
	}
	if err := writeRecordUnit(filepath.Join(newRoot, runtimeUnitDir), ksu); err != nil {
		log.Printf("install %s: %v", recordUnitName, err)
		return
	}
	log.Printf("installed %s in %s: it runs %s status --record at boot", recordUnitName, runtimeUnitDir, ksu)
}

// writeRecordUnit writes the unit file into dir and its wants link in
// dir/multi-user.target.wants.
func writeRecordUnit(dir, ksu string) error {
	wants := filepath.Join(dir, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", wants, err)
	}
	unit := filepath.Join(dir, recordUnitName)
	if err := os.WriteFile(unit, []byte(recordUnit(ksu)), 0o644); err != nil {
		return fmt.Errorf("write unit: %w", err)
	}
	link := filepath.Join(wants, recordUnitName)
	err := os.Symlink("../"+recordUnitName, link)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("enable unit: %w", err)
	}
	return nil
}
