//go:build linux && amd64

package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SiginfoSize is sizeof(siginfo_t) on Linux.
const SiginfoSize = int(unsafe.Sizeof(unix.Siginfo{}))

// SiginfoBytes returns the raw bytes of info, including the union that
// unix.Siginfo keeps in blank fields (sender pid and uid, sigqueue value,
// timer id and overrun).
func SiginfoBytes(info *unix.Siginfo) []byte {
	b := make([]byte, SiginfoSize)
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(info)), SiginfoSize))
	return b
}
