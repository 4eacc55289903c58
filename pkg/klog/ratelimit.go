package klog

import (
	"fmt"
	"os"
	"strings"
)

// LiftRatelimit sets the sysctl file path (PrintkDevkmsg outside tests) to
// "on", so that the kernel keeps every record written to /dev/kmsg, and
// returns a function that writes the previous setting back.
//
// With the default setting "ratelimit", the kernel accepts a burst of 10
// records per 5 seconds from each open /dev/kmsg and drops the rest
// (devkmsg_write in kernel/printk/printk.c, Linux 4.10 and later). A
// kernel switch logs more than that within a second. When the setting
// is already "on" or "off", or the kernel command line fixed it with
// printk.devkmsg=, nothing is changed, and restore does nothing.
func LiftRatelimit(path string) (restore func() error, err error) {
	nothing := func() error { return nil }
	b, err := os.ReadFile(path)
	if err != nil {
		return nothing, fmt.Errorf("read %s: %w", path, err)
	}
	previous := strings.TrimSpace(string(b))
	if previous != "ratelimit" {
		return nothing, nil
	}
	// N.B. the kernel rejects the write with EINVAL when printk.devkmsg=
	// is on its command line, because the setting is then locked.
	if err := os.WriteFile(path, []byte("on\n"), 0); err != nil {
		return nothing, fmt.Errorf("set %s to on: %w", path, err)
	}
	return func() error {
		if err := os.WriteFile(path, []byte(previous+"\n"), 0); err != nil {
			return fmt.Errorf("set %s back to %s: %w", path, previous, err)
		}
		return nil
	}, nil
}
