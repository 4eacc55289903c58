package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/restore"
)

// The restore recreates the tmpfs content that the snapshot's processes
// use (pkg/restore, PathStats) inside the restorer's root, the new root:
// /run there is ksu-init's /run tmpfs, moved, which the real init keeps.
// Other tmpfs mount points get a tmpfs from mountTmpfs. On disk, the
// paths below /tmp must survive systemd-tmpfiles' boot-time cleanup,
// which keepTmpPaths arranges.

// mountTmpfs mounts a tmpfs on dir of the new root, creating the
// directory first, for the tmpfs content of the snapshot. The restore
// then sets the mount point's recorded owner and mode. /dev/shm lies in
// the /dev mount that switchRoot keeps for the real init, and systemd
// leaves a tmpfs it finds on /dev/shm in place.
//
// Limitation: a tmpfs mounted elsewhere, such as on /tmp, stays mounted
// in the new root, but it is only known to work where the real init
// adopts an existing mount instead of mounting a fresh tmpfs over it.
// systemd does so for a mount unit whose mount point is already mounted,
// such as tmp.mount, but no test boots a guest whose /tmp is a tmpfs.
func mountTmpfs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create tmpfs mount point: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return &os.PathError{Op: "mount tmpfs", Path: dir, Err: err}
	}
	return nil
}

// tmpfilesDirs are the tmpfiles.d configuration directories, from the
// highest precedence to the lowest (tmpfiles.d(5)). A file in one of
// them replaces a file of the same name in the later ones.
var tmpfilesDirs = []string{"/etc/tmpfiles.d", "/run/tmpfiles.d", "/usr/local/lib/tmpfiles.d", "/usr/lib/tmpfiles.d"}

// keptConf is the tmpfiles.d file that excludes the kept paths from
// age-based cleaning.
const keptConf = "/run/tmpfiles.d/ksu-restored.conf"

// keepTmpPaths keeps systemd-tmpfiles from deleting the kept paths, on
// disk below /tmp, when the new root boots. It returns the tmpfiles.d
// files it wrote. root is the new root ("" once inside it).
//
// It writes an "x" line per path to keptConf, which excludes the path
// from age-based cleaning. A "D" line removes a directory's contents at
// boot regardless of "x" lines: systemd-tmpfiles 252 (Debian 12) empties
// /tmp on "D /tmp" with --boot --remove, excluded paths included. So each
// configuration file with a "D" line above a kept path is copied to
// /run/tmpfiles.d, which takes precedence over /usr/lib/tmpfiles.d for
// this boot only, with that line made a "d" line: the directory is still
// created, and its contents stay. Only a file in /etc/tmpfiles.d, which
// takes precedence over /run, cannot be replaced that way.
func keepTmpPaths(root string, kept []string) ([]string, error) {
	if len(kept) == 0 {
		return nil, nil
	}
	var written []string
	var conf bytes.Buffer
	conf.WriteString("# Written by ksu-init: paths below /tmp that restored processes use.\n")
	for _, p := range kept {
		q, err := tmpfilesQuote(p)
		if err != nil {
			return written, err
		}
		fmt.Fprintf(&conf, "x %s\n", q)
	}
	if err := writeConf(root, keptConf, conf.Bytes()); err != nil {
		return written, err
	}
	written = append(written, keptConf)
	overrides, err := overrideRemovals(root, kept)
	return append(written, overrides...), err
}

// overrideRemovals writes to /run/tmpfiles.d a copy of every effective
// configuration file whose "D" lines would empty a directory above a
// kept path, with those lines made "d" lines.
func overrideRemovals(root string, kept []string) ([]string, error) {
	var written, blocked []string
	for name, dir := range effectiveConfs(root) {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(root + path)
		if err != nil {
			return written, fmt.Errorf("read tmpfiles.d file: %w", err)
		}
		changed, ok := keepContents(data, kept)
		if !ok {
			continue
		}
		if dir == "/etc/tmpfiles.d" {
			blocked = append(blocked, path)
			continue
		}
		target := filepath.Join("/run/tmpfiles.d", name)
		if err := writeConf(root, target, changed); err != nil {
			return written, err
		}
		written = append(written, target)
	}
	slices.Sort(written)
	if len(blocked) > 0 {
		slices.Sort(blocked)
		return written, fmt.Errorf("%s empty a directory that restored processes use at boot, and /run/tmpfiles.d cannot override /etc/tmpfiles.d",
			strings.Join(blocked, ", "))
	}
	return written, nil
}

// effectiveConfs maps the name of every tmpfiles.d file under root to
// the directory whose copy takes effect.
func effectiveConfs(root string) map[string]string {
	confs := map[string]string{}
	for _, dir := range tmpfilesDirs {
		entries, err := os.ReadDir(root + dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if _, seen := confs[e.Name()]; !seen && strings.HasSuffix(e.Name(), ".conf") {
				confs[e.Name()] = dir
			}
		}
	}
	return confs
}

// keepContents returns data with each "D" line whose path is a kept
// path or a directory above one turned into a "d" line, and whether it
// changed any line.
func keepContents(data []byte, kept []string) ([]byte, bool) {
	var out bytes.Buffer
	changed := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 2 && strings.HasPrefix(fields[0], "D") && coversAny(fields[1], kept) {
			i := strings.Index(line, "D")
			line = line[:i] + "d" + line[i+1:]
			changed = true
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes(), changed
}

// coversAny reports whether dir is one of paths or a directory above one.
func coversAny(dir string, paths []string) bool {
	dir = strings.TrimSuffix(dir, "/")
	return slices.ContainsFunc(paths, func(p string) bool {
		return p == dir || strings.HasPrefix(p, dir+"/")
	})
}

// tmpfilesQuote returns path as a tmpfiles.d path field: specifiers
// escaped as %%, and in double quotes with C escapes when it contains
// spaces, quotes or backslashes. A path with a control character is
// rejected, because a configuration line cannot contain it.
func tmpfilesQuote(path string) (string, error) {
	if strings.ContainsFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("path %q has a control character, which a tmpfiles.d line cannot contain", path)
	}
	path = strings.ReplaceAll(path, "%", "%%")
	if !strings.ContainsAny(path, " \t\"'\\") {
		return path, nil
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(path) + `"`, nil
}

// writeConf writes a tmpfiles.d file, creating its directory.
func writeConf(root, path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(root+path), 0o755); err != nil {
		return fmt.Errorf("create tmpfiles.d directory: %w", err)
	}
	if err := os.WriteFile(root+path, data, 0o644); err != nil {
		return fmt.Errorf("write tmpfiles.d file: %w", err)
	}
	return nil
}

// tmpfsReport is the tmpfs part of /run/ksu/report.json: the content
// that the restore recreated, and what keeps /tmp paths on disk.
type tmpfsReport struct {
	Dirs    int      `json:"dirs"`
	Files   int      `json:"files"`
	Bytes   uint64   `json:"bytes"`
	Present int      `json:"present"`
	Kept    []string `json:"kept,omitempty"`
	// Tmpfiles are the tmpfiles.d files written for Kept.
	Tmpfiles []string `json:"tmpfiles,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// finishTmpfs builds the report of the tmpfs content and protects the
// kept paths on disk. An error only goes to the report and the log: the
// processes run already.
func finishTmpfs(logf func(string, ...any), st restore.PathStats) *tmpfsReport {
	rep := &tmpfsReport{Dirs: st.Dirs, Files: st.Files, Bytes: st.Bytes, Present: st.Present, Kept: st.Kept}
	written, err := keepTmpPaths("", st.Kept)
	rep.Tmpfiles = written
	if err != nil {
		rep.Error = err.Error()
		logf("paths below /tmp that restored processes use may be deleted at boot: %v", err)
	}
	return rep
}
