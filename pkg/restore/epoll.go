package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// epollEventSize is sizeof(struct epoll_event) on x86-64, where the
// kernel packs it: a 32-bit event mask and 64 bits of data.
const epollEventSize = 12

// addEpollTargets fills the interest lists of the epoll instances among
// fds that have none yet, with epoll_ctl calls injected into process pid.
// The kernel keys each entry by the target's open file description and
// the descriptor number it was added under, so the calls must run in a
// process that holds the targets at their saved numbers; the dump
// rejected epoll instances whose targets were not.
//
// Preconditions: every descriptor of fds is installed in pid.
func (rs *restorer) addEpollTargets(pid int, fds []snapshot.FD) error {
	table := map[int32]uint64{}
	for _, fd := range fds {
		table[fd.Num] = fd.File
	}
	for _, fd := range fds {
		sf := rs.files[fd.File]
		if sf == nil || sf.Kind != snapshot.FileEpoll || rs.objects().epollDone[sf.ID] {
			continue
		}
		for _, tgt := range sf.Epoll.Targets {
			if err := rs.addEpollTarget(pid, fd.Num, tgt, table); err != nil {
				return fmt.Errorf("restore epoll fd %d: %w", fd.Num, err)
			}
		}
		rs.objects().epollDone[sf.ID] = true
	}
	return nil
}

func (rs *restorer) addEpollTarget(pid int, epfd int32, tgt snapshot.EpollTarget, table map[int32]uint64) error {
	if table[tgt.FD] != tgt.File {
		return fmt.Errorf("target fd %d: process %d holds file %d there, want file %d", tgt.FD, pid, table[tgt.FD], tgt.File)
	}
	b := make([]byte, epollEventSize)
	binary.LittleEndian.PutUint32(b, tgt.Events)
	binary.LittleEndian.PutUint64(b[4:], tgt.Data)
	if err := rs.poke(pid, 0, b); err != nil {
		return err
	}
	_, err := rs.t.Syscall(pid, unix.SYS_EPOLL_CTL, uintptr(epfd), unix.EPOLL_CTL_ADD, uintptr(tgt.FD), uintptr(rs.scratch()))
	if err != nil {
		return fmt.Errorf("add target fd %d events %#x data %#x: %w", tgt.FD, tgt.Events, tgt.Data, err)
	}
	return nil
}
