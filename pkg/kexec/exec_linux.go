package kexec

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Filesystem freeze requests from linux/fs.h: _IOWR('X', 119, int) and
// _IOWR('X', 120, int). golang.org/x/sys/unix does not define them.
const (
	ioctlFIFREEZE = 0xc0045877
	ioctlFITHAW   = 0xc0045878
)

// Freeze flushes and freezes the filesystems mounted at mountpoints
// (FIFREEZE), so the new kernel finds them clean. It returns a function
// that thaws the ones it froze. On error, the ones already frozen are
// thawed before it returns.
//
// N.B. While a filesystem is frozen, any write to it blocks, including
// writes to a log file or to stdout redirected there. Between Freeze and
// Exec, log only to the kernel log or a terminal.
func Freeze(mountpoints []string) (thaw func(), err error) {
	unix.Sync()

	var frozen []*os.File
	thaw = func() {
		for _, dir := range frozen {
			unix.IoctlSetInt(int(dir.Fd()), ioctlFITHAW, 0)
			dir.Close()
		}
		frozen = nil
	}

	for _, mp := range mountpoints {
		dir, err := os.Open(mp)
		if err != nil {
			thaw()
			return nil, fmt.Errorf("freeze %s: %w", mp, err)
		}
		if err := unix.IoctlSetInt(int(dir.Fd()), ioctlFIFREEZE, 0); err != nil {
			dir.Close()
			thaw()
			return nil, fmt.Errorf("freeze %s: %w", mp, os.NewSyscallError("ioctl FIFREEZE", err))
		}
		frozen = append(frozen, dir)
	}
	return thaw, nil
}

// Exec starts the kernel loaded by Load. It returns only on failure, for
// example when no kernel is loaded; the caller then thaws what it froze
// and resumes what it stopped.
func Exec() error {
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
	return fmt.Errorf("start loaded kernel: %w", os.NewSyscallError("reboot(LINUX_REBOOT_CMD_KEXEC)", err))
}
