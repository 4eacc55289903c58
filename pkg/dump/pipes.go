package dump

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// checkPipePeers rejects a pipe whose read or write end no dumped process
// holds but some other process does: the restore creates a new pipe, so
// the peer outside the snapshot would lose its connection without anyone
// noticing. A pipe whose other end nobody holds is kept.
//
// Limitation: this rejects pipes to processes outside the dumped trees,
// such as a shell pipeline's other side or a supervisor's log pipe.
// Dumping those processes too lifts it for one process tree.
func (ft *fileTable) checkPipePeers() error {
	ends := map[uint64]int{} // pipe id to a bit set: 1 read end, 2 write end
	for _, f := range ft.files {
		if f.Kind != snapshot.FilePipe {
			continue
		}
		switch f.Flags & unix.O_ACCMODE {
		case unix.O_RDONLY:
			ends[f.PipeID] |= 1
		case unix.O_WRONLY:
			ends[f.PipeID] |= 2
		default:
			ends[f.PipeID] |= 3
		}
	}
	var rejects []error
	for _, f := range ft.files {
		if f.Kind == snapshot.FilePipe && ends[f.PipeID] != 3 {
			o := ft.owner[f.ID]
			closed, err := peerClosed(o.pid, o.fd, ends[f.PipeID] == 1)
			if err != nil {
				return err
			}
			if closed {
				continue
			}
			rejects = append(rejects, &RejectError{PID: o.pid, Object: fmt.Sprintf("fd %d", o.fd),
				Kind: fmt.Sprintf("pipe:[%d]", f.PipeID), Reason: "its other end is held only outside the dumped processes"})
			ends[f.PipeID] = 3 // report each pipe once
		}
	}
	return errors.Join(rejects...)
}

// readPipes records the capacity and unread data of every pipe.
func (ft *fileTable) readPipes() error {
	for _, f := range ft.files {
		pipe := ft.pipes[f.PipeID]
		if f.Kind != snapshot.FilePipe && f.Kind != snapshot.FileFIFO || pipe.Capacity != 0 {
			continue
		}
		o := ft.owner[f.ID]
		if err := readPipe(o.pid, o.fd, pipe); err != nil {
			return fmt.Errorf("read pipe:[%d] through fd %d of process %d: %w", f.PipeID, o.fd, o.pid, err)
		}
	}
	return nil
}

// readPipe copies the unread data of the pipe behind descriptor fd of pid
// without consuming it, with the bounds of its packet-mode buffers. It
// opens a read end of the same pipe through /proc/PID/fd, and tee(2)
// copies the pipe's buffers, packet flag included, into pipes of the
// dumper's own, where reads find the packets (readPackets).
func readPipe(pid, fd int, pipe *snapshot.Pipe) error {
	src, err := os.OpenFile(fmt.Sprintf("%s/%d/fd/%d", procRoot, pid, fd), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	capacity, err := unix.FcntlInt(src.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return fmt.Errorf("read pipe capacity: %w", err)
	}
	pipe.Capacity = uint32(capacity)
	queued, err := unix.IoctlGetInt(int(src.Fd()), unix.TIOCINQ)
	if err != nil {
		return fmt.Errorf("read pipe fill level: %w", err)
	}
	if queued == 0 {
		return nil
	}
	pipe.Data, pipe.Packets, err = readPackets(int(src.Fd()), queued, capacity)
	return err
}
