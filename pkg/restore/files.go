package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// openFile returns the restorer's open file description for File id,
// opening it on first use.
func (rs *restorer) openFile(id uint64) (*fdFile, error) {
	if f, ok := rs.open[id]; ok {
		return f, nil
	}
	sf, ok := rs.files[id]
	if !ok {
		return nil, fmt.Errorf("file %d is not in the snapshot", id)
	}
	var f *fdFile
	var err error
	switch sf.Kind {
	case snapshot.FileMemfd:
		f, err = rs.openObjectFile(sf)
	case snapshot.FileRegular, snapshot.FileDirectory, snapshot.FileCharDevice:
		if sf.ShmID != 0 { // a deleted file
			f, err = rs.openObjectFile(sf)
			break
		}
		f, err = openPath(sf)
	case snapshot.FileFIFO:
		f, err = rs.openFIFO(sf)
	case snapshot.FileEventFD, snapshot.FileTimerFD, snapshot.FileSignalFD, snapshot.FileEpoll:
		f, err = openAnon(sf, rs.dumpedAt)
	case snapshot.FilePipe:
		f, err = rs.openPipe(sf)
	case snapshot.FileUnixSocket:
		f, err = rs.openUnixSocket(sf)
	case snapshot.FileTCPSocket, snapshot.FileUDPSocket:
		f, err = rs.openInetSocket(sf)
	default:
		err = fmt.Errorf("file kind %v is not supported yet", sf.Kind)
	}
	if err != nil {
		return nil, err
	}
	rs.open[id] = f
	return f, nil
}

// openFlagsMask drops the flags that only act at open time.
const openFlagsMask = ^uint32(unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)

func openPath(sf *snapshot.File) (*fdFile, error) {
	f, err := openFD(sf.Ref.Path, int(sf.Flags&openFlagsMask))
	if err != nil {
		return nil, err
	}
	if sf.Kind != snapshot.FileCharDevice {
		if err := sameFile(f, sf.Ref, false); err != nil {
			f.Close()
			return nil, err
		}
	}
	if sf.Kind == snapshot.FileRegular {
		if _, err := unix.Seek(f.fd, sf.Pos, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("seek %s to %d: %w", sf.Ref.Path, sf.Pos, err)
		}
	}
	return f, nil
}

// openPipe opens a new description of the pipe behind sf through the
// restorer's own ends, creating the pipe and refilling its data first.
func (rs *restorer) openPipe(sf *snapshot.File) (*fdFile, error) {
	ends, ok := rs.pipeEnds[sf.PipeID]
	if !ok {
		var err error
		if ends, err = newPipe(rs.pipes[sf.PipeID]); err != nil {
			return nil, fmt.Errorf("recreate pipe %d: %w", sf.PipeID, err)
		}
		rs.pipeEnds[sf.PipeID] = ends
	}
	end := ends[0]
	if sf.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		end = ends[1]
	}
	return openPipeEnd(fmt.Sprintf("/proc/self/fd/%d", end.fd), int(sf.Flags&openFlagsMask))
}

func newPipe(p *snapshot.Pipe) ([2]*fdFile, error) {
	if p == nil {
		return [2]*fdFile{}, fmt.Errorf("pipe record missing")
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return [2]*fdFile{}, err
	}
	ends := [2]*fdFile{{fds[0], "pipe read end"}, {fds[1], "pipe write end"}}
	if p.Capacity != 0 {
		if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, int(p.Capacity)); err != nil {
			ends[0].Close()
			ends[1].Close()
			return [2]*fdFile{}, fmt.Errorf("size pipe to %d bytes: %w", p.Capacity, err)
		}
	}
	if err := fillPipe(fds[1], p); err != nil {
		ends[0].Close()
		ends[1].Close()
		return [2]*fdFile{}, err
	}
	return ends, nil
}

// fdFile is a descriptor the restorer owns. It is not an *os.File on
// purpose: os.File switches pipes to non-blocking mode for its poller,
// which would change the flags of descriptions that tracees share.
type fdFile struct {
	fd   int
	name string
}

func openFD(path string, flags int) (*fdFile, error) {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &fdFile{fd, path}, nil
}

func (f *fdFile) Close() error { return unix.Close(f.fd) }
