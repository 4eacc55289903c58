package restore

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// openPipeEnd opens a new description of the pipe or FIFO end at path
// with the saved status flags. open(2) rejects O_DIRECT on a pipe with
// EINVAL, but fcntl(F_SETFL) accepts it, so packet mode is set after the
// open.
func openPipeEnd(path string, flags int) (*fdFile, error) {
	f, err := openFD(path, flags&^unix.O_DIRECT)
	if err != nil || flags&unix.O_DIRECT == 0 {
		return f, err
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, flags&^unix.O_ACCMODE); err != nil {
		f.Close()
		return nil, fmt.Errorf("set O_DIRECT on %s: %w", path, err)
	}
	return f, nil
}
