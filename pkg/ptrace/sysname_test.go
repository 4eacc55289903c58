package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestSyscallName(t *testing.T) {
	for _, tt := range []struct {
		nr   uintptr
		want string
	}{
		{unix.SYS_SETPGID, "setpgid"},
		{unix.SYS_CLONE3, "clone3"},
		{9999, "system call 9999"},
	} {
		if got := SyscallName(tt.nr); got != tt.want {
			t.Errorf("SyscallName(%d) = %q, want %q", tt.nr, got, tt.want)
		}
	}
}
