// Command fakeinit replaces the real init in ksu-init's QEMU tests. It
// checks what ksu-init's handoff promises:
//
//   - /dev, /proc, /sys and /run are moved into the new root;
//   - the root is read-write, or read-only when the test asks;
//   - the arguments after "--" on the kernel command line arrive;
//   - no signal arrives ignored.
//
// It prints FAKEINIT PASS or FAKEINIT FAIL with the reasons, then powers
// the guest off. It refuses to run unless it is PID 1.
package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	// It powers the machine off at the end, so it must only ever run as
	// the init of a test guest.
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "fakeinit: refusing to run: it powers off the machine and must be PID 1 of a test guest")
		os.Exit(2)
	}
	fmt.Printf("FAKEINIT started pid=%d args=%q env=%q\n", os.Getpid(), os.Args, os.Environ())
	var problems []string
	for _, check := range checks {
		if err := check(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == 0 {
		fmt.Println("FAKEINIT PASS")
	} else {
		fmt.Printf("FAKEINIT FAIL: %s\n", strings.Join(problems, "; "))
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("FAKEINIT poweroff failed: %v\n", err)
	}
	select {}
}

var checks = []func() error{
	checkMounts,
	checkWritableRoot,
	checkArgs,
	checkSignals,
}

// checkMounts reads /proc/self/mounts (so /proc must be there) and checks
// the mount points ksu-init moves.
func checkMounts() error {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("read mounts: %v", err)
	}
	fmt.Printf("FAKEINIT mounts:\n%s", data)
	want := map[string]string{"/": "ext4", "/dev": "devtmpfs", "/proc": "proc", "/sys": "sysfs", "/run": "tmpfs"}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && want[f[1]] == f[2] {
			delete(want, f[1])
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("mounts missing: %v", want)
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		return fmt.Errorf("no /dev/null: %v", err)
	}
	return nil
}

// checkWritableRoot checks that the root is writable, or read-only when
// the command line gives init the argument fakeinit-expect-ro.
func checkWritableRoot() error {
	err := os.WriteFile("/fakeinit-was-here", []byte("ok\n"), 0o644)
	if slices.Contains(os.Args[1:], "fakeinit-expect-ro") {
		if !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("root should be read-only, but a write returned %v", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("root is not writable: %v", err)
	}
	return nil
}

// checkArgs checks the argument the test puts after "--" on the kernel
// command line, which the kernel gives to ksu-init and ksu-init must pass
// on.
func checkArgs() error {
	if slices.Contains(os.Args[1:], "fakeinit-arg") {
		return nil
	}
	return fmt.Errorf("args %q lack fakeinit-arg from after -- on the command line", os.Args)
}

// checkSignals checks that init did not inherit ignored signals. The Go
// runtime keeps an inherited SIG_IGN for SIGHUP and SIGINT, so ignoring
// them in ksu-init would show here.
func checkSignals() error {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			if strings.Trim(strings.TrimSpace(mask), "0") != "" {
				return fmt.Errorf("signals ignored at start: SigIgn %s", strings.TrimSpace(mask))
			}
			return nil
		}
	}
	return fmt.Errorf("no SigIgn line in /proc/self/status")
}
