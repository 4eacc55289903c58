package restore

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// ErrInvalidSnapshot is wrapped by every error that rejects a snapshot
// whose records decode but describe what no kernel produces. Examples are
// ids out of range or listed twice, overlapping mappings, descriptor
// numbers out of range and references to objects the snapshot lacks.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// Kernel bounds that no valid snapshot exceeds, on any x86-64 kernel.
const (
	// pidMaxLimit is PID_MAX_LIMIT on 64-bit kernels (4 Mi, the
	// ceiling of kernel.pid_max): no PID or TID is larger.
	pidMaxLimit = 4 << 20
	// nrOpenMax is the largest value fs.nr_open accepts on a 64-bit
	// kernel: INT_MAX rounded down to a multiple of 64. Every
	// descriptor number is below fs.nr_open.
	nrOpenMax = 2147483584
	// nrOpenDefault is fs.nr_open's default (1 Mi), the descriptor
	// bound for a process whose RLIMIT_NOFILE the snapshot lacks.
	nrOpenDefault = 1 << 20
	// userAddressEnd is the end of the user address space with 5-level
	// paging (56 bits). 4-level paging ends lower, at 2^47.
	userAddressEnd = 1 << 56
	// maxPipeCapacity is the largest size F_SETPIPE_SZ accepts (2 GiB).
	maxPipeCapacity = 1 << 31
	// defaultPipeCapacity is a new pipe's capacity: 16 pages.
	defaultPipeCapacity = 16 << 12
)

// invalidf returns an error that wraps ErrInvalidSnapshot.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSnapshot, fmt.Sprintf(format, args...))
}

// validate checks the decoded records of a snapshot before the restore
// creates any task, so that a hostile or corrupt snapshot fails with an
// error that names the object, not with a half-built process tree. It
// allocates in proportion to the records, never to a size or count that
// a record claims.
func validate(procs []*snapshot.Process, files map[uint64]*snapshot.File,
	pipes map[uint64]*snapshot.Pipe, shms map[uint64]*snapshot.SharedMemory) error {
	if err := validateTree(procs); err != nil {
		return err
	}
	for _, p := range procs {
		if err := validateProcess(p, files, shms); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(files)) {
		if err := validateFile(files[id], pipes, shms); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(pipes)) {
		if err := validatePipe(pipes[id]); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(shms)) {
		if err := validateShm(shms[id]); err != nil {
			return err
		}
	}
	return nil
}

// validateTree checks the ids of every process and thread and the
// parent links. A parent that is not in the snapshot is allowed: that
// process is the root of a tree, and the restore makes it a child of the
// restorer.
func validateTree(procs []*snapshot.Process) error {
	owner := map[int32]int32{} // TID or PID to the PID of its process
	for _, p := range procs {
		if err := validateIDs(p, owner); err != nil {
			return err
		}
	}
	parents := map[int32]int32{}
	for _, p := range procs {
		parents[p.PID] = p.PPID
	}
	for _, p := range procs {
		if err := checkAncestry(p.PID, parents); err != nil {
			return err
		}
	}
	return nil
}

// validateIDs checks the ids of process p and its threads and records
// them in owner, which holds the ids of the processes checked before.
func validateIDs(p *snapshot.Process, owner map[int32]int32) error {
	if err := checkID("process", p.PID); err != nil {
		return err
	}
	if other, ok := owner[p.PID]; ok {
		return invalidf("process %d: pid already used by process %d", p.PID, other)
	}
	owner[p.PID] = p.PID
	switch {
	case p.PPID < 0 || p.PGID < 0 || p.SID < 0:
		return invalidf("process %d: negative parent %d, group %d or session %d", p.PID, p.PPID, p.PGID, p.SID)
	case p.PPID == p.PID:
		return invalidf("process %d: it is its own parent", p.PID)
	case p.State > snapshot.StateZombie:
		return invalidf("process %d: unknown state %v", p.PID, p.State)
	}
	return validateThreads(p, owner)
}

// validateThreads checks that a live process has its main thread and
// that every TID is in range and unique in the snapshot.
func validateThreads(p *snapshot.Process, owner map[int32]int32) error {
	main := false
	for _, th := range p.Threads {
		if th.TID == p.PID {
			main = true
			continue
		}
		if err := checkID(fmt.Sprintf("thread of process %d", p.PID), th.TID); err != nil {
			return err
		}
		if other, ok := owner[th.TID]; ok {
			return invalidf("thread %d of process %d: tid already used by process %d", th.TID, p.PID, other)
		}
		owner[th.TID] = p.PID
	}
	if !main && p.State != snapshot.StateZombie {
		return invalidf("process %d: no main thread %d among its %d threads", p.PID, p.PID, len(p.Threads))
	}
	return nil
}

// checkID rejects a PID or TID that no kernel hands out.
func checkID(what string, id int32) error {
	if id <= 0 || id > pidMaxLimit {
		return invalidf("%s %d: id outside 1 to %d", what, id, pidMaxLimit)
	}
	return nil
}

// checkAncestry follows the parents of pid inside the snapshot and
// rejects a cycle, which no process tree has.
func checkAncestry(pid int32, parents map[int32]int32) error {
	cur := pid
	for range len(parents) {
		ppid, ok := parents[cur]
		if !ok {
			return nil
		}
		cur = ppid
	}
	if _, ok := parents[cur]; ok {
		return invalidf("process %d: its parents form a cycle", pid)
	}
	return nil
}

// validateProcess checks the memory map and the descriptor table of p.
func validateProcess(p *snapshot.Process, files map[uint64]*snapshot.File,
	shms map[uint64]*snapshot.SharedMemory) error {
	if p.State != snapshot.StateZombie {
		if p.MM == nil {
			return invalidf("process %d: no memory map for a live process", p.PID)
		}
		if err := validateVMAs(p.PID, p.MM.VMAs, shms); err != nil {
			return err
		}
	}
	return validateFDs(p, files)
}

// validateVMAs checks that the mappings are page aligned, inside the
// user address space, in ascending order and disjoint, and that the
// shared memory they map is in the snapshot.
func validateVMAs(pid int32, vmas []snapshot.VMA, shms map[uint64]*snapshot.SharedMemory) error {
	mask := uint64(os.Getpagesize()) - 1
	var prevEnd uint64
	for i, v := range vmas {
		if err := checkVMA(v, mask, prevEnd); err != nil {
			return invalidf("process %d: mapping %d [%#x, %#x) (%v): %v", pid, i, v.Start, v.End, v.Kind, err)
		}
		if v.ShmID != 0 || v.Kind == snapshot.VMAShmem {
			if _, ok := shms[v.ShmID]; !ok {
				return invalidf("process %d: mapping %d [%#x, %#x) maps shared memory %d, which is not in the snapshot",
					pid, i, v.Start, v.End, v.ShmID)
			}
		}
		prevEnd = v.End
	}
	return nil
}

// checkVMA checks one mapping against the end of the one before it.
// [vsyscall] is exempt from the address space bound: the kernel places it
// above user space, and the restore does not map it.
func checkVMA(v snapshot.VMA, mask, prevEnd uint64) error {
	switch {
	case v.Start >= v.End:
		return errors.New("empty or reversed")
	case v.Start&mask != 0 || v.End&mask != 0:
		return fmt.Errorf("not aligned to %d-byte pages", mask+1)
	case v.Start < prevEnd:
		return fmt.Errorf("overlaps the mapping before it, which ends at %#x", prevEnd)
	case v.Kind > snapshot.VMAVSyscall:
		return errors.New("unknown kind")
	case v.Kind != snapshot.VMAVSyscall && v.End > userAddressEnd:
		return fmt.Errorf("%d bytes ending beyond the user address space end %#x", v.End-v.Start, uint64(userAddressEnd))
	case v.Kind == snapshot.VMAFile && v.File.Path == "":
		return errors.New("file mapping without a path")
	}
	return nil
}

// validateFDs checks that every descriptor number is unique and below
// fdLimit, and that its file is in the snapshot.
func validateFDs(p *snapshot.Process, files map[uint64]*snapshot.File) error {
	limit := fdLimit(p.Identity.Rlimits)
	seen := make(map[int32]bool, len(p.FDs))
	for _, fd := range p.FDs {
		switch {
		case fd.Num < 0:
			return invalidf("process %d: fd %d is negative", p.PID, fd.Num)
		case uint64(fd.Num) >= limit:
			return invalidf("process %d: fd %d is not below the descriptor limit %d", p.PID, fd.Num, limit)
		case seen[fd.Num]:
			return invalidf("process %d: fd %d is listed twice", p.PID, fd.Num)
		}
		seen[fd.Num] = true
		if _, ok := files[fd.File]; !ok {
			return invalidf("process %d: fd %d refers to file %d, which is not in the snapshot", p.PID, fd.Num, fd.File)
		}
	}
	return nil
}

// fdLimit returns a bound on the descriptor numbers of a process with the
// saved limits rl: the larger of its RLIMIT_NOFILE hard limit and
// fs.nr_open's default, at most nrOpenMax. The hard limit alone is no
// bound, because Linux lets a process lower it under descriptors that are
// already open.
//
// NOTE: a process that raised fs.nr_open, opened a descriptor above 1 Mi
// and then lowered its hard limit under that descriptor is rejected.
func fdLimit(rl []snapshot.Rlimit) uint64 {
	limit := uint64(nrOpenDefault)
	for _, r := range rl {
		if r.Resource == unix.RLIMIT_NOFILE {
			limit = max(limit, r.Max)
		}
	}
	return min(limit, nrOpenMax)
}

// validateFile checks that a file's pipe or shared memory is in the
// snapshot.
func validateFile(f *snapshot.File, pipes map[uint64]*snapshot.Pipe, shms map[uint64]*snapshot.SharedMemory) error {
	switch f.Kind {
	case snapshot.FilePipe, snapshot.FileFIFO:
		if _, ok := pipes[f.PipeID]; !ok {
			return invalidf("file %d (%v): pipe %d is not in the snapshot", f.ID, f.Kind, f.PipeID)
		}
	case snapshot.FileMemfd:
		if _, ok := shms[f.ShmID]; !ok {
			return invalidf("file %d (%v): shared memory %d is not in the snapshot", f.ID, f.Kind, f.ShmID)
		}
	}
	return nil
}

// validatePipe checks that a pipe's capacity is one F_SETPIPE_SZ accepts
// and that its queued data fits in it, since the kernel never holds more.
func validatePipe(p *snapshot.Pipe) error {
	capacity := uint64(p.Capacity)
	if capacity > maxPipeCapacity {
		return invalidf("pipe %d: capacity %d bytes, limit %d", p.ID, capacity, uint64(maxPipeCapacity))
	}
	if capacity == 0 {
		capacity = defaultPipeCapacity
	}
	if uint64(len(p.Data)) > capacity {
		return invalidf("pipe %d: %d bytes queued, more than its capacity of %d", p.ID, len(p.Data), capacity)
	}
	return nil
}

// validateShm checks that a shared memory object's size fits a file
// size (off_t) and, for shared anonymous memory, the address space.
func validateShm(s *snapshot.SharedMemory) error {
	switch {
	case s.Size > math.MaxInt64:
		return invalidf("shared memory %d (%v): size %d does not fit a file size", s.ID, s.Kind, s.Size)
	case s.Kind == snapshot.ShmAnon && s.Size > userAddressEnd:
		return invalidf("shared memory %d (%v): size %d is larger than the user address space", s.ID, s.Kind, s.Size)
	}
	return nil
}

// validatePages checks a page section before its contents are written.
// A section of process memory must name a live process of the snapshot,
// and every range must lie inside that process's mappings. A section of
// shared memory must name an object of the snapshot, and every range must
// lie inside the object. Without this check, a page section could name a
// process outside the snapshot and have its memory overwritten.
func validatePages(procs []*snapshot.Process, shms map[uint64]*snapshot.SharedMemory, pg *snapshot.Pages) error {
	if pg.ShmID != 0 {
		return validateShmPages(shms, pg)
	}
	i := slices.IndexFunc(procs, func(p *snapshot.Process) bool { return p.PID == pg.PID })
	if i < 0 {
		return invalidf("pages of process %d, which is not in the snapshot", pg.PID)
	}
	p := procs[i]
	if p.MM == nil || p.State == snapshot.StateZombie {
		return invalidf("pages of process %d, which has no memory map", pg.PID)
	}
	for _, r := range pg.Ranges {
		if err := checkCovered(p.MM.VMAs, r); err != nil {
			return invalidf("pages of process %d: %v", pg.PID, err)
		}
	}
	return nil
}

// validateShmPages checks that the ranges of pg lie inside its object.
// The last page of an object whose size is not a multiple of the page
// size is saved whole, so the bound is the size rounded up to a page.
func validateShmPages(shms map[uint64]*snapshot.SharedMemory, pg *snapshot.Pages) error {
	s, ok := shms[pg.ShmID]
	if !ok {
		return invalidf("pages of shared memory %d, which is not in the snapshot", pg.ShmID)
	}
	page := uint64(os.Getpagesize())
	end := s.Size/page*page + min(s.Size%page, 1)*page
	for _, r := range pg.Ranges {
		if r.Addr > end || r.Len > end-r.Addr {
			return invalidf("pages [%#x, +%#x) of shared memory %d lie beyond its size %d", r.Addr, r.Len, s.ID, s.Size)
		}
	}
	return nil
}

// checkCovered reports an error unless mappings of vmas, which are
// sorted and disjoint, cover every byte of r. Adjacent mappings may
// share the range.
func checkCovered(vmas []snapshot.VMA, r snapshot.PageRange) error {
	addr, end := r.Addr, r.Addr+r.Len
	i := sort.Search(len(vmas), func(i int) bool { return vmas[i].End > addr })
	for addr < end {
		if i == len(vmas) || vmas[i].Start > addr {
			return fmt.Errorf("range [%#x, %#x) is outside every mapping at %#x", r.Addr, end, addr)
		}
		addr = vmas[i].End
		i++
	}
	return nil
}
