package kexec

import "strings"

// Cmdline builds the new kernel's command line from the running one's:
// it drops the parameters the boot loader added for the old kernel
// (BOOT_IMAGE= and initrd=) and the ksu.hold= of an earlier update,
// appends extra, and adds panic=10 unless a panic= parameter is already
// there, so a kernel that panics during the switch reboots instead of
// hanging.
func Cmdline(running, extra string) string {
	var kept []string
	hasPanic := false
	old := splitParams(running)
	for i, param := range append(old, splitParams(extra)...) {
		if strings.HasPrefix(param, "BOOT_IMAGE=") || strings.HasPrefix(param, "initrd=") {
			continue
		}
		if i < len(old) && strings.HasPrefix(param, "ksu.hold=") {
			continue
		}
		if strings.HasPrefix(param, "panic=") {
			hasPanic = true
		}
		kept = append(kept, param)
	}
	if !hasPanic {
		kept = append(kept, "panic=10")
	}
	return strings.Join(kept, " ")
}

// splitParams splits a kernel command line at spaces outside double
// quotes, as the kernel's next_arg does, keeping the quotes in place.
func splitParams(cmdline string) []string {
	var params []string
	var cur strings.Builder
	quoted := false
	for _, r := range cmdline {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ' ' || r == '\t' || r == '\n') && !quoted:
			if cur.Len() > 0 {
				params = append(params, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		params = append(params, cur.String())
	}
	return params
}
