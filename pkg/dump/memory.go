package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/ptrace"
	"github.com/ksu-project/ksu/pkg/snapshot"
)

// chunkPages is how many pages writePages reads from a process at once.
const chunkPages = 1024

// specialKinds maps the kernel's names of special mappings to VMA kinds.
var specialKinds = map[string]snapshot.VMAKind{
	"[vdso]":        snapshot.VMAVDSO,
	"[vvar]":        snapshot.VMAVVAR,
	"[vvar_vclock]": snapshot.VMAVVARVClock,
	"[vsyscall]":    snapshot.VMAVSyscall,
}

// checkMaps rejects mappings the restore cannot rebuild.
func checkMaps(pid int) []*RejectError {
	maps, err := procfs.ReadMaps(procRoot, pid)
	if err != nil {
		return []*RejectError{{PID: pid, Object: "maps", Kind: "memory map", Reason: err.Error()}}
	}
	var out []*RejectError
	for _, m := range maps {
		object := fmt.Sprintf("vma %#x-%#x %s", m.Start, m.End, m.Path)
		switch {
		case m.Perms.Shared || strings.HasSuffix(m.Path, " (deleted)"):
			if r := checkObjectVMA(pid, m, object); r != nil {
				out = append(out, r)
			}
		case strings.HasPrefix(m.Path, "/") && m.Inode == 0:
			out = append(out, notYet(pid, object, "mapping without an inode"))
		}
	}
	return out
}

// recordMM reads the memory map and the mm fields of stopped process pid
// and leaves out the scratch page s.
func recordMM(t *ptrace.Tracer, s *scratch, pid int) (*snapshot.MM, error) {
	stat, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return nil, err
	}
	brk, err := t.Syscall(pid, unix.SYS_BRK, 0)
	if err != nil {
		return nil, fmt.Errorf("read brk of process %d: %w", pid, err)
	}
	mm := &snapshot.MM{
		StartCode: stat.StartCode, EndCode: stat.EndCode, StartData: stat.StartData, EndData: stat.EndData,
		StartBrk: stat.StartBrk, Brk: uint64(brk), StartStack: stat.StartStack,
		ArgStart: stat.ArgStart, ArgEnd: stat.ArgEnd, EnvStart: stat.EnvStart, EnvEnd: stat.EnvEnd,
	}
	if mm.Auxv, err = readAuxv(pid); err != nil {
		return nil, err
	}
	exe := fmt.Sprintf("%s/%d/exe", procRoot, pid)
	if mm.Exe, err = fileRef(exe); err != nil {
		return nil, err
	}
	maps, err := procfs.ReadMaps(procRoot, pid)
	if err != nil {
		return nil, err
	}
	for _, m := range maps {
		v, err := toVMA(pid, m)
		if err != nil {
			return nil, err
		}
		mm.VMAs = append(mm.VMAs, cutOut(v, uint64(s.addr), uint64(s.addr)+uint64(os.Getpagesize()))...)
	}
	return mm, nil
}

func toVMA(pid int, m procfs.Mapping) (snapshot.VMA, error) {
	v := snapshot.VMA{Start: m.Start, End: m.End, Prot: uint32(m.Perms.Prot()), Kind: snapshot.VMAAnon}
	if kind, ok := specialKinds[m.Path]; ok {
		v.Kind = kind
		return v, nil
	}
	if m.Path == "[stack]" {
		v.Flags |= snapshot.VMAGrowsDown
	}
	if m.Perms.Shared {
		v.Flags |= snapshot.VMAShared
	}
	if m.Inode != 0 {
		v.Kind = snapshot.VMAFile
		v.Offset = m.Offset
		ref, err := fileRef(fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, m.Start, m.End))
		if err != nil {
			return v, err
		}
		ref.Path = m.Path
		v.File = ref
	}
	return v, nil
}

// cutOut returns v without [start, end), in zero to two pieces.
func cutOut(v snapshot.VMA, start, end uint64) []snapshot.VMA {
	if end <= v.Start || start >= v.End {
		return []snapshot.VMA{v}
	}
	var out []snapshot.VMA
	if v.Start < start {
		lo := v
		lo.End = start
		out = append(out, lo)
	}
	if end < v.End {
		hi := v
		if hi.Kind == snapshot.VMAFile {
			hi.Offset += end - v.Start
		}
		hi.Start = end
		out = append(out, hi)
	}
	return out
}

// fileRef stats path and records what the file looked like, following
// the magic links of /proc/PID for the file's identity and path.
func fileRef(path string) (snapshot.FileRef, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return snapshot.FileRef{}, fmt.Errorf("stat %s: %w", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	target, err := os.Readlink(path)
	if err != nil {
		return snapshot.FileRef{}, fmt.Errorf("read link %s: %w", path, err)
	}
	return snapshot.FileRef{
		Path: target, Dev: st.Dev, Inode: st.Ino, Mode: st.Mode, Rdev: st.Rdev,
		Size: st.Size, ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}, nil
}

func readAuxv(pid int) ([]uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/auxv", procRoot, pid))
	if err != nil {
		return nil, fmt.Errorf("read auxv of process %d: %w", pid, err)
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// writePages writes the private pages of p's anonymous and file-backed
// mappings: for anonymous memory the touched pages that are not all
// zeros, for a file the pages that differ from it (the process's private
// copies). It reads them through /proc/PID/mem, which reads PROT_NONE
// pages too. It calls progress with its running total after each chunk.
func writePages(sw *snapshot.Writer, p *process, progress func(uint64)) (uint64, error) {
	mem, err := os.Open(fmt.Sprintf("%s/%d/mem", procRoot, p.pid))
	if err != nil {
		return 0, err
	}
	defer mem.Close()
	page := uint64(os.Getpagesize())
	buf := make([]byte, chunkPages*page)
	var total uint64
	for _, v := range p.proc.MM.VMAs {
		if v.Kind != snapshot.VMAAnon && v.Kind != snapshot.VMAFile || v.Flags&snapshot.VMAShared != 0 {
			continue
		}
		for start := v.Start; start < v.End; start += chunkPages * page {
			end := min(v.End, start+chunkPages*page)
			n, err := writeChunk(sw, mem, p.pid, v.Kind, start, end, buf)
			total += n
			if err != nil {
				return total, err
			}
			progress(total)
		}
	}
	return total, nil
}

// writeChunk writes one page section for the pages of [start, end) that
// the snapshot needs.
func writeChunk(sw *snapshot.Writer, mem *os.File, pid int, kind snapshot.VMAKind, start, end uint64, buf []byte) (uint64, error) {
	page := uint64(os.Getpagesize())
	entries, err := procfs.ReadPagemap(procRoot, pid, start, end)
	if err != nil {
		return 0, err
	}
	pages := &snapshot.Pages{PID: int32(pid)}
	var data bytes.Buffer
	for i, e := range entries {
		if !needPage(kind, e) {
			continue
		}
		addr := start + uint64(i)*page
		b := buf[:page]
		if _, err := mem.ReadAt(b, int64(addr)); err != nil {
			return 0, fmt.Errorf("read page %#x of process %d: %w", addr, pid, err)
		}
		if kind == snapshot.VMAAnon && isZero(b) {
			continue
		}
		addRange(pages, addr, page)
		data.Write(b)
	}
	if len(pages.Ranges) == 0 {
		return 0, nil
	}
	n := uint64(data.Len())
	if err := sw.WritePages(pages, io.Reader(&data)); err != nil {
		return 0, err
	}
	return n, nil
}

// needPage reports whether a page's content must be saved: a private
// anonymous page is needed once touched, a file page only once the
// process has its own copy, which pagemap shows as anonymous.
func needPage(kind snapshot.VMAKind, e procfs.PageEntry) bool {
	if e.Untouched() {
		return false
	}
	if kind == snapshot.VMAFile {
		return e.Swapped() || !e.FileOrShared()
	}
	return true
}

func addRange(p *snapshot.Pages, addr, size uint64) {
	if n := len(p.Ranges); n > 0 && p.Ranges[n-1].Addr+p.Ranges[n-1].Len == addr {
		p.Ranges[n-1].Len += size
		return
	}
	p.Ranges = append(p.Ranges, snapshot.PageRange{Addr: addr, Len: size})
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	return true
}
