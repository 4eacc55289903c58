//go:build linux && amd64

package sys

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tfdIocSetTicks is TFD_IOC_SET_TICKS from linux/timerfd.h:
// _IOW('T', 0, __u64).
const tfdIocSetTicks = 0x40085400

// SetTimerfdTicks sets the count of expirations that a read of timerfd
// fd returns next. The kernel offers it only with
// CONFIG_CHECKPOINT_RESTORE, and returns ENOTTY without.
func SetTimerfdTicks(fd int, ticks uint64) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tfdIocSetTicks, uintptr(unsafe.Pointer(&ticks)))
	runtime.KeepAlive(&ticks)
	if errno != 0 {
		return os.NewSyscallError("ioctl TFD_IOC_SET_TICKS", errno)
	}
	return nil
}
