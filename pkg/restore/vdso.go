package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/vdso"
)

// archMapVDSO64 is ARCH_MAP_VDSO_64 from asm/prctl.h: map the vDSO at an
// address, once the old one is gone.
const archMapVDSO64 = 0x2003

// maxUserAddr is the end of the x86-64 user address space with 4-level
// page tables (TASK_SIZE_MAX); a new vDSO is placed below it.
const maxUserAddr = 0x7ffffffff000

// vdsoSwitch is the plan by which restored processes reach the running
// kernel's vDSO. One plan serves the whole snapshot, because every
// process of the old kernel mapped the same image.
type vdsoSwitch struct {
	plan     vdso.Plan
	oldImage []byte // Meta.VDSO
	// size is the length of the running kernel's [vdso], and vvarSize
	// that of the [vvar] and [vvar_vclock] mappings the kernel puts
	// right before it.
	size, vvarSize uint64
}

// newVDSOSwitch compares the snapshot's vDSO with the running kernel's
// and plans how restored processes use the new one. It fails, naming the
// function, when an old function has no counterpart and no system call
// to fall back to.
func newVDSOSwitch(m snapshot.Meta) (*vdsoSwitch, error) {
	maps, err := procfs.ReadMaps(procRoot, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("read the running kernel's vDSO: %w", err)
	}
	local, ok := findMapping(maps, "[vdso]")
	if !ok {
		if len(m.VDSO) == 0 {
			return &vdsoSwitch{plan: vdso.Plan{Strategy: vdso.Remap}}, nil
		}
		return nil, fmt.Errorf("running kernel maps no vDSO (booted with vdso=0?), but the snapshot's processes use one")
	}

	sw := &vdsoSwitch{oldImage: m.VDSO, size: local.Size(), vvarSize: vvarBefore(maps, local.Start)}
	if len(m.VDSO) == 0 {
		// A snapshot written before Meta had the image: the restore is
		// only correct on the release that took it.
		if rel := runningRelease(); rel != m.KernelRelease {
			return nil, fmt.Errorf("snapshot of kernel %s records no vDSO image, so it restores only on that release, not on %s",
				m.KernelRelease, rel)
		}
		sw.plan = vdso.Plan{Strategy: vdso.Remap}
		return sw, nil
	}

	old, err := vdso.Parse(m.VDSO)
	if err != nil {
		return nil, fmt.Errorf("snapshot's vDSO: %w", err)
	}
	image, _, err := vdso.ReadSelf()
	if err != nil {
		return nil, err
	}
	cur, err := vdso.Parse(image)
	if err != nil {
		return nil, fmt.Errorf("running kernel's vDSO: %w", err)
	}
	if sw.plan, err = vdso.NewPlan(old, cur); err != nil {
		return nil, fmt.Errorf("vDSO of kernel %s cannot serve processes of kernel %s: %w", runningRelease(), m.KernelRelease, err)
	}
	return sw, nil
}

// describe returns the plan in a few words, for the restore log.
func (sw *vdsoSwitch) describe() string {
	calls := 0
	for _, p := range sw.plan.Patches {
		if p.Target.Name == "" {
			calls++
		}
	}
	if sw.plan.Strategy == vdso.Remap {
		return "remap the new vDSO at the old address"
	}
	return fmt.Sprintf("trampolines: %d functions jump to the new vDSO, %d make system calls",
		len(sw.plan.Patches)-calls, calls)
}

// mapVDSO gives process pid the running kernel's vDSO, as rs.vdso plans:
// either mapped at the saved [vdso] address, or mapped elsewhere with a
// patched copy of the old image at the saved address. Saved [vvar] and
// [vvar_vclock] ranges stay free, so that nothing maps the old kernel's
// data pages.
func (rs *restorer) mapVDSO(pid int, vmas []snapshot.VMA) error {
	var old *snapshot.VMA
	for i := range vmas {
		if vmas[i].Kind == snapshot.VMAVDSO {
			old = &vmas[i]
		}
	}
	if old == nil {
		return nil
	}
	busy := busyRanges(vmas, rs.stubRange())
	if rs.vdso.plan.Strategy == vdso.Remap {
		at := old.Start - rs.vdso.vvarSize
		if r, clash := overlap(busy, at, old.Start); clash {
			// Limitation: the vDSO is not moved when the running
			// kernel's vvar pages do not fit below the saved [vdso].
			// A trampoline plan with every function at its own offset
			// would lift it.
			return fmt.Errorf("new vvar pages %#x-%#x overlap the saved mapping %#x-%#x", at, old.Start, r[0], r[1])
		}
		got, err := rs.archMapVDSO(pid, at)
		if err != nil {
			return err
		}
		if got != old.Start {
			return fmt.Errorf("vDSO mapped at %#x, want %#x", got, old.Start)
		}
		return nil
	}
	return rs.mapTrampolines(pid, old, busy)
}

// mapTrampolines maps the new vDSO in a free range near the saved one and
// writes the plan's patched copy of the old image at the saved address,
// with the saved protection. AT_SYSINFO_EHDR keeps pointing at the copy,
// whose ELF headers and symbols are the old ones.
func (rs *restorer) mapTrampolines(pid int, old *snapshot.VMA, busy [][2]uint64) error {
	sw := rs.vdso
	if uint64(len(sw.oldImage)) != old.End-old.Start {
		return fmt.Errorf("saved vDSO %#x-%#x is not the %d-byte image of the snapshot", old.Start, old.End, len(sw.oldImage))
	}

	at, err := freeRange(busy, sw.vvarSize+sw.size, old.Start)
	if err != nil {
		return fmt.Errorf("place the new vDSO: %w", err)
	}
	base, err := rs.archMapVDSO(pid, at)
	if err != nil {
		return err
	}
	if r, clash := overlap(busy, base-sw.vvarSize, base+sw.size); clash {
		return fmt.Errorf("kernel put the vDSO at %#x, over the saved mapping %#x-%#x", base, r[0], r[1])
	}

	code, err := sw.plan.Apply(sw.oldImage, base)
	if err != nil {
		return err
	}
	size := uintptr(len(code))
	if _, err := rs.t.Syscall(pid, unix.SYS_MMAP, uintptr(old.Start), size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED, ^uintptr(0), 0); err != nil {
		return fmt.Errorf("map the vDSO copy at %#x: %w", old.Start, err)
	}
	mem, err := rs.mem(int32(pid))
	if err != nil {
		return err
	}
	if _, err := mem.WriteAt(code, int64(old.Start)); err != nil {
		return fmt.Errorf("write the vDSO copy at %#x of process %d: %w", old.Start, pid, err)
	}
	if _, err := rs.t.Syscall(pid, unix.SYS_MPROTECT, uintptr(old.Start), size, uintptr(old.Prot)); err != nil {
		return fmt.Errorf("protect the vDSO copy at %#x: %w", old.Start, err)
	}
	rs.logf("process %d: vDSO copy with trampolines at %#x, new vDSO at %#x", pid, old.Start, base)
	return nil
}

// archMapVDSO maps the running kernel's vDSO in process pid with its
// vvar pages at hint, and returns where the [vdso] landed: the kernel
// takes the address as a hint only.
func (rs *restorer) archMapVDSO(pid int, hint uint64) (uint64, error) {
	if _, err := rs.t.Syscall(pid, unix.SYS_ARCH_PRCTL, archMapVDSO64, uintptr(hint)); err != nil {
		return 0, fmt.Errorf("map vDSO at %#x: %w", hint, err)
	}
	maps, err := procfs.ReadMaps(procRoot, pid)
	if err != nil {
		return 0, err
	}
	m, ok := findMapping(maps, "[vdso]")
	if !ok {
		return 0, fmt.Errorf("no [vdso] in process %d after arch_prctl(ARCH_MAP_VDSO_64, %#x)", pid, hint)
	}
	return m.Start, nil
}

// stubRange returns the range the restore stub occupies in every process.
func (rs *restorer) stubRange() [2]uint64 {
	return [2]uint64{rs.base, rs.base + uint64(stubPages*os.Getpagesize())}
}

// busyRanges returns the ranges a new vDSO must not cover: every saved
// mapping except the old kernel's vvar pages, and the stub.
func busyRanges(vmas []snapshot.VMA, stub [2]uint64) [][2]uint64 {
	busy := [][2]uint64{stub}
	for _, v := range vmas {
		if v.Kind != snapshot.VMAVVAR && v.Kind != snapshot.VMAVVARVClock {
			busy = append(busy, [2]uint64{v.Start, v.End})
		}
	}
	return busy
}

// overlap returns a range of busy that [start, end) overlaps.
func overlap(busy [][2]uint64, start, end uint64) ([2]uint64, bool) {
	for _, r := range busy {
		if start < r[1] && r[0] < end {
			return r, true
		}
	}
	return [2]uint64{}, false
}

// freeRange returns the start of a size-byte range that overlaps no busy
// range: the highest one ending at or below near, else the lowest one
// starting at or above it.
func freeRange(busy [][2]uint64, size, near uint64) (uint64, error) {
	end := near
	for range len(busy) + 1 {
		if end < lowestStub+size {
			break
		}
		r, clash := overlap(busy, end-size, end)
		if !clash {
			return end - size, nil
		}
		end = r[0]
	}
	start := near
	for range len(busy) + 1 {
		if start+size > maxUserAddr {
			break
		}
		r, clash := overlap(busy, start, start+size)
		if !clash {
			return start, nil
		}
		start = r[1]
	}
	return 0, fmt.Errorf("no free %d-byte range near %#x", size, near)
}

// vvarBefore returns the length of the [vvar] and [vvar_vclock]
// mappings that end where the [vdso] at vdsoStart begins.
func vvarBefore(maps []procfs.Mapping, vdsoStart uint64) uint64 {
	start := vdsoStart
	for range len(maps) {
		moved := false
		for _, m := range maps {
			if m.End == start && (m.Path == "[vvar]" || m.Path == "[vvar_vclock]") {
				start, moved = m.Start, true
			}
		}
		if !moved {
			break
		}
	}
	return vdsoStart - start
}

func findMapping(maps []procfs.Mapping, path string) (procfs.Mapping, bool) {
	for _, m := range maps {
		if m.Path == path {
			return m, true
		}
	}
	return procfs.Mapping{}, false
}

// runningRelease returns the running kernel's release, as uname -r
// prints it, or "" when uname fails.
func runningRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}
