package restore

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// prctlMMMapSize is sizeof(struct prctl_mm_map): eleven addresses, the
// auxv pointer, auxv_size and exe_fd.
const prctlMMMapSize = 104

// buildMM replaces the stub's address space of process p with the saved
// one, without page contents.
func (rs *restorer) buildMM(p *snapshot.Process) error {
	pid := int(p.PID)
	if err := rs.anonStub(pid); err != nil {
		return err
	}
	pidfd, err := rs.t.Syscall(pid, unix.SYS_PIDFD_OPEN, uintptr(os.Getpid()), 0)
	if err != nil {
		return fmt.Errorf("open pidfd of the restorer: %w", err)
	}
	rs.pidfds[pid] = pidfd
	if err := rs.unmapAll(pid); err != nil {
		return err
	}
	if err := rs.mapVDSO(pid, p.MM.VMAs); err != nil {
		return err
	}
	for _, v := range p.MM.VMAs {
		if err := rs.mapVMA(pid, v); err != nil {
			return fmt.Errorf("map vma %#x-%#x (%v): %w", v.Start, v.End, v.Kind, err)
		}
	}
	if err := rs.applyMadvise(pid, p.MM.VMAs); err != nil {
		return err
	}
	return rs.setMM(pid, p.MM)
}

// anonStub replaces the stub's file mapping with an anonymous copy, so
// that the memfd it was executed from is no longer mapped: PR_SET_MM
// refuses to change the executable while the old one is mapped.
func (rs *restorer) anonStub(pid int) error {
	size := uintptr(stubPages * os.Getpagesize())
	_, err := rs.t.Syscall(pid, unix.SYS_MMAP, uintptr(rs.base), size,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED, ^uintptr(0), 0)
	if err != nil {
		return fmt.Errorf("replace stub mapping: %w", err)
	}
	// N.B. the thread returned from that call into a zeroed page, but it
	// is stopped and Syscall put its registers back: writing the code
	// again before it runs makes the swap invisible.
	mem, err := rs.mem(int32(pid))
	if err != nil {
		return err
	}
	img := buildStub(rs.base)
	if _, err := mem.WriteAt(img[codeOffset:], int64(rs.base+codeOffset)); err != nil {
		return fmt.Errorf("write stub code: %w", err)
	}
	return nil
}

// unmapAll unmaps every mapping of pid except the stub and [vsyscall].
func (rs *restorer) unmapAll(pid int) error {
	maps, err := procfs.ReadMaps(procRoot, pid)
	if err != nil {
		return err
	}
	end := rs.base + uint64(stubPages*os.Getpagesize())
	for _, m := range maps {
		if m.Path == "[vsyscall]" || (m.Start >= rs.base && m.End <= end) {
			continue
		}
		if _, err := rs.t.Syscall(pid, unix.SYS_MUNMAP, uintptr(m.Start), uintptr(m.Size())); err != nil {
			return fmt.Errorf("unmap stub's %#x-%#x %s: %w", m.Start, m.End, m.Path, err)
		}
	}
	return nil
}

// mapVMA maps one saved VMA at its address.
func (rs *restorer) mapVMA(pid int, v snapshot.VMA) error {
	if v.ShmID != 0 || v.Flags&snapshot.VMAShared != 0 {
		return rs.mapObject(pid, v)
	}
	flags := uintptr(unix.MAP_PRIVATE | unix.MAP_FIXED)
	if v.Flags&snapshot.VMAGrowsDown != 0 {
		flags |= unix.MAP_GROWSDOWN
	}
	size := uintptr(v.End - v.Start)
	switch v.Kind {
	case snapshot.VMAAnon:
		_, err := rs.t.Syscall(pid, unix.SYS_MMAP, uintptr(v.Start), size, uintptr(v.Prot),
			flags|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
		return err
	case snapshot.VMAFile:
		f, err := rs.openMapped(v.File)
		if err != nil {
			return err
		}
		fd, err := rs.installTemp(pid, f)
		if err != nil {
			return err
		}
		_, err = rs.t.Syscall(pid, unix.SYS_MMAP, uintptr(v.Start), size, uintptr(v.Prot), flags, fd, uintptr(v.Offset))
		if _, cerr := rs.t.Syscall(pid, unix.SYS_CLOSE, fd); err == nil && cerr != nil {
			err = cerr
		}
		return err
	case snapshot.VMAVDSO, snapshot.VMAVVAR, snapshot.VMAVVARVClock, snapshot.VMAVSyscall:
		return nil
	}
	return fmt.Errorf("vma kind %v is not supported yet", v.Kind)
}

// installTemp gives process pid a descriptor for the restorer's file f
// with pidfd_getfd, which shares f's open file description.
func (rs *restorer) installTemp(pid int, f *fdFile) (uintptr, error) {
	fd, err := rs.t.Syscall(pid, unix.SYS_PIDFD_GETFD, rs.pidfds[pid], uintptr(f.fd), 0)
	if err != nil {
		return 0, fmt.Errorf("copy restorer's fd %d (%s): %w", f.fd, f.name, err)
	}
	return fd, nil
}

// openMapped opens a mapped file and checks that it is the one the
// snapshot saw: same device, inode, size and modification time.
func (rs *restorer) openMapped(ref snapshot.FileRef) (*fdFile, error) {
	if f, ok := rs.mapped[ref]; ok {
		return f, nil
	}
	f, err := openFD(ref.Path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	if err := sameFile(f, ref, true); err != nil {
		f.Close()
		return nil, err
	}
	rs.mapped[ref] = f
	return f, nil
}

// sameFile checks f against ref: identity always, and size and
// modification time when content matters.
func sameFile(f *fdFile, ref snapshot.FileRef, content bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", f.name, err)
	}
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if st.Dev != ref.Dev || st.Ino != ref.Inode {
		return fmt.Errorf("%s is another file now: device %#x inode %d, want %#x %d", ref.Path, st.Dev, st.Ino, ref.Dev, ref.Inode)
	}
	if content && (st.Size != ref.Size || !mtime.Equal(ref.ModTime)) {
		return fmt.Errorf("%s changed since the dump: size %d modified %v, want %d %v", ref.Path, st.Size, mtime, ref.Size, ref.ModTime)
	}
	return nil
}

// setMM sets the mm fields, the auxiliary vector and the executable with
// prctl(PR_SET_MM, PR_SET_MM_MAP).
func (rs *restorer) setMM(pid int, mm *snapshot.MM) error {
	exe, err := rs.openMapped(mm.Exe)
	if err != nil {
		return fmt.Errorf("open executable: %w", err)
	}
	exeFD, err := rs.installTemp(pid, exe)
	if err != nil {
		return err
	}
	defer rs.t.Syscall(pid, unix.SYS_CLOSE, exeFD)
	b := make([]byte, prctlMMMapSize+8*len(mm.Auxv))
	le := binary.LittleEndian
	for i, v := range []uint64{mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk,
		mm.StartStack, mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd} {
		le.PutUint64(b[8*i:], v)
	}
	le.PutUint64(b[88:], rs.scratch()+prctlMMMapSize)
	le.PutUint32(b[96:], uint32(8*len(mm.Auxv)))
	le.PutUint32(b[100:], uint32(exeFD))
	for i, v := range mm.Auxv {
		le.PutUint64(b[prctlMMMapSize+8*i:], v)
	}
	if err := rs.poke(pid, 0, b); err != nil {
		return err
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, uintptr(rs.scratch()), prctlMMMapSize, 0); err != nil {
		return fmt.Errorf("set mm fields: %w", err)
	}
	return nil
}

// writePages writes the contents of one page section through
// /proc/PID/mem.
func (rs *restorer) writePages(sec *snapshot.Section) error {
	p := sec.Pages()
	if p.ShmID != 0 {
		return rs.writeObjectPages(sec)
	}
	mem, err := rs.mem(p.PID)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, r := range p.Ranges {
		for off := uint64(0); off < r.Len; {
			n := min(uint64(len(buf)), r.Len-off)
			if _, err := io.ReadFull(sec, buf[:n]); err != nil {
				return fmt.Errorf("read pages of process %d: %w", p.PID, err)
			}
			if _, err := mem.WriteAt(buf[:n], int64(r.Addr+off)); err != nil {
				return fmt.Errorf("write pages %#x-%#x of process %d: %w", r.Addr+off, r.Addr+off+n, p.PID, err)
			}
			off += n
		}
		rs.stats.Pages += r.Len
	}
	return nil
}
