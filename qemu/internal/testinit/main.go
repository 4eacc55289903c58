// Command testinit is PID 1 of the small initramfs that the qemu package's
// own tests boot, and the command those tests run in the guest.
//
// It refuses to do anything unless the kernel command line has a
// ksu.testinit= parameter, so that it cannot act on the machine that builds
// it. As PID 1 it mounts /dev, /proc, /sys and /tmp, loads the modules
// listed in /modules/order, starts /ksu-agent on the org.ksu.agent port,
// restarts the agent when it exits, and reaps orphans. Signals to PID 1
// drive the guest:
//
//	SIGUSR1  kexec into /kexec/vmlinuz with /kexec/initrd.cpio
//	SIGUSR2  power off
//
// Console markers start with "KSU-TESTINIT". Run as another PID, it is a
// small toolbox for the tests (see runTool), because the initramfs has no
// other programs.
package main

import (
	"fmt"
	"os"
	"strings"
)

const marker = "ksu.testinit="

func main() {
	if os.Getpid() == 1 {
		runInit()
		return
	}
	if !inTestGuest() {
		fmt.Fprintln(os.Stderr, "testinit: refusing to run: no "+marker+" on the kernel command line")
		os.Exit(2)
	}
	os.Exit(runTool(os.Args[1:]))
}

func inTestGuest() bool {
	return strings.Contains(" "+readCmdline()+" ", " "+marker)
}

func readCmdline() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cmdlineParam returns the value of key=value on the kernel command line.
func cmdlineParam(key string) string {
	for _, p := range strings.Fields(readCmdline()) {
		if v, ok := strings.CutPrefix(p, key+"="); ok {
			return v
		}
	}
	return ""
}
