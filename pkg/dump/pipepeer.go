package dump

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// peerClosed reports whether nobody at all holds the other end of the
// pipe behind descriptor fd of pid, as after a writer closed its end
// once it was done. hasRead and hasWrite say which ends the dumped
// processes hold. The restore recreates such a pipe and closes the
// missing end, so the reader still sees EOF after the data and the
// writer still gets EPIPE.
//
// It polls a new descriptor for the held end, opened through
// /proc/PID/fd: a read end reports POLLHUP when the pipe has no writer,
// and a write end reports POLLERR when the pipe has no reader. Opening
// an end adds one of its own kind only, so the count of the other kind
// stays as the processes left it.
func peerClosed(pid, fd int, hasRead bool) (bool, error) {
	mode, want := os.O_WRONLY, int16(unix.POLLERR)
	if hasRead {
		mode, want = os.O_RDONLY, unix.POLLHUP
	}
	path := fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd)
	f, err := os.OpenFile(path, mode|unix.O_NONBLOCK, 0)
	if err != nil {
		return false, fmt.Errorf("open pipe end %s: %w", path, err)
	}
	defer f.Close()
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN | unix.POLLOUT}}
	if _, err := unix.Poll(fds, 0); err != nil {
		return false, fmt.Errorf("poll pipe end %s: %w", path, err)
	}
	return fds[0].Revents&want != 0, nil
}
