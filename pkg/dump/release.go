package dump

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/netlock"
	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/tcprepair"
)

// ReleaseConnections undoes what a dump with ExitStopped leaves for the
// restore: it takes every TCP socket of processes pids out of repair mode
// and lifts the packet drop. Call it before resuming processes that stay
// on this kernel after a failed switch, or their connections stay silent.
// Sockets not in repair mode are left alone; every socket is tried even
// when one fails.
func ReleaseConnections(pids []int) error {
	var errs []error
	for _, pid := range pids {
		errs = append(errs, releaseProcess(pid))
	}
	errs = append(errs, netlock.Unlock())
	return errors.Join(errs...)
}

func releaseProcess(pid int) error {
	fds, err := procfs.FDs(procRoot, pid)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the process is gone
	}
	if err != nil {
		return fmt.Errorf("release connections of process %d: %w", pid, err)
	}
	var errs []error
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd))
		if err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		if err := releaseSocket(pid, fd); err != nil {
			errs = append(errs, fmt.Errorf("release fd %d of process %d: %w", fd, pid, err))
		}
	}
	return errors.Join(errs...)
}

// releaseSocket takes descriptor fd of pid out of TCP repair mode if it
// is a TCP socket in that mode.
func releaseSocket(pid, fd int) error {
	sock, err := socketCopy(pid, fd)
	if err != nil {
		return err
	}
	defer closeFD(sock)

	proto, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil || proto != unix.IPPROTO_TCP {
		return nil
	}
	repair, err := unix.GetsockoptInt(sock, unix.IPPROTO_TCP, unix.TCP_REPAIR)
	if err != nil {
		return fmt.Errorf("read TCP_REPAIR: %w", err)
	}
	if repair == 0 {
		return nil
	}
	return tcprepair.Leave(sock)
}
