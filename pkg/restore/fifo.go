package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// openFIFO opens a new description of the named FIFO of sf. The first
// call opens the FIFO read-write in the restorer, which never blocks and
// keeps the buffer alive, and refills its unread data.
func (rs *restorer) openFIFO(sf *snapshot.File) (*fdFile, error) {
	o := rs.objects()
	rw, ok := o.fifos[sf.PipeID]
	if !ok {
		var err error
		if rw, err = rs.newFIFO(sf); err != nil {
			return nil, fmt.Errorf("reopen FIFO %s: %w", sf.Ref.Path, err)
		}
		o.fifos[sf.PipeID] = rw
	}
	return openPipeEnd(fmt.Sprintf("/proc/self/fd/%d", rw.fd), int(sf.Flags&openFlagsMask))
}

func (rs *restorer) newFIFO(sf *snapshot.File) (*fdFile, error) {
	f, err := openFD(sf.Ref.Path, unix.O_RDWR|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if err := rs.fillFIFO(f, sf); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fillFIFO checks that f is the saved FIFO and that it is empty, then
// writes the saved data. A FIFO that still holds data was kept open by a
// process outside the snapshot, and refilling it would duplicate data.
func (rs *restorer) fillFIFO(f *fdFile, sf *snapshot.File) error {
	if err := sameFile(f, sf.Ref, false); err != nil {
		return err
	}
	queued, err := unix.IoctlGetInt(f.fd, unix.TIOCINQ)
	if err != nil {
		return fmt.Errorf("read fill level: %w", err)
	}
	if queued != 0 {
		return fmt.Errorf("FIFO already holds %d bytes: a process outside the snapshot keeps it open", queued)
	}
	p := rs.pipes[sf.PipeID]
	if p == nil {
		return fmt.Errorf("pipe record %d missing", sf.PipeID)
	}
	if p.Capacity != 0 {
		if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETPIPE_SZ, int(p.Capacity)); err != nil {
			return fmt.Errorf("size to %d bytes: %w", p.Capacity, err)
		}
	}
	return fillPipe(f.fd, p)
}
