package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// failAction is the action PID 1 takes after a fatal error, set by
// ksu.onfail=.
type failAction string

const (
	failReboot   failAction = "reboot"
	failPoweroff failAction = "poweroff"
	failHalt     failAction = "halt"
)

// defaultRootWait bounds the wait for the root device when the command line
// has no ksu.rootwait=.
const defaultRootWait = 30 * time.Second

// bootConfig is the set of ksu-init settings read from the kernel command
// line.
type bootConfig struct {
	root       string        // root=: /dev/X, UUID=, LABEL=, PARTUUID= or MAJOR:MINOR
	rootFSType []string      // rootfstype=, a comma-separated list; empty means probe
	rootFlags  string        // rootflags=, passed to mount(2) as data
	readOnly   bool          // "ro" (the last of "ro" and "rw" wins; default rw)
	rootWait   time.Duration // ksu.rootwait=SECONDS
	init       string        // init=; empty means the kernel's search list
	onFail     failAction    // ksu.onfail=reboot|poweroff|halt
	debug      bool          // ksu.debug
	// hold is ksu.hold=, comma-separated: the systemd services whose
	// every process ksu update preserved, which ksu-init keeps systemd
	// from starting again (see holdUnits).
	hold []string
}

// parseCmdline reads a kernel command line. Parameters it does not know
// are ignored, because the kernel and the real init use them. Invalid
// values of ksu.* parameters fall back to their defaults and are returned
// as warnings for the caller to log, because PID 1 must boot anyway.
func parseCmdline(cmdline string) (bootConfig, []string) {
	cfg := bootConfig{rootWait: defaultRootWait, onFail: failReboot}
	var warnings []string
	for _, param := range splitCmdline(cmdline) {
		if param == "--" {
			break // the rest are arguments for init
		}
		key, value, _ := strings.Cut(param, "=")
		if w := cfg.set(key, value); w != "" {
			warnings = append(warnings, w)
		}
	}
	return cfg, warnings
}

// set applies one parameter and returns a warning for an invalid value.
func (c *bootConfig) set(key, value string) string {
	switch key {
	case "root":
		c.root = value
	case "rootfstype":
		c.rootFSType = nil
		for _, t := range strings.Split(value, ",") {
			if t != "" {
				c.rootFSType = append(c.rootFSType, t)
			}
		}
	case "rootflags":
		c.rootFlags = value
	case "ro":
		c.readOnly = true
	case "rw":
		c.readOnly = false
	case "init":
		c.init = value
	case "ksu.hold":
		c.hold = nil
		for _, name := range strings.Split(value, ",") {
			if name != "" {
				c.hold = append(c.hold, name)
			}
		}
	case "ksu.debug":
		c.debug = value == "" || value == "1" || value == "on" || value == "true"
	case "ksu.rootwait":
		secs, err := strconv.ParseFloat(value, 64)
		if err != nil || secs < 0 || secs > 3600 {
			return fmt.Sprintf("invalid ksu.rootwait=%q (want seconds, 0 to 3600); using %v", value, defaultRootWait)
		}
		c.rootWait = time.Duration(secs * float64(time.Second))
	case "ksu.onfail":
		switch a := failAction(value); a {
		case failReboot, failPoweroff, failHalt:
			c.onFail = a
		default:
			return fmt.Sprintf("invalid ksu.onfail=%q (want reboot, poweroff or halt); using %s", value, failReboot)
		}
	}
	return ""
}

// splitCmdline splits a command line into parameters the way the kernel
// does in next_arg: at spaces outside double quotes, with
// the quotes removed, so `a="b c"` is one parameter, a=b c.
func splitCmdline(s string) []string {
	var params []string
	var cur strings.Builder
	inQuote, inParam := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inParam = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inParam {
				params = append(params, cur.String())
				cur.Reset()
				inParam = false
			}
		default:
			cur.WriteRune(r)
			inParam = true
		}
	}
	if inParam {
		params = append(params, cur.String())
	}
	return params
}
