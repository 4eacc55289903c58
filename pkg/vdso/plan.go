package vdso

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Strategy is the method by which a restored process reaches the new
// kernel's vDSO.
type Strategy int

const (
	// Remap maps the new vDSO at the old vDSO's address.
	Remap Strategy = iota
	// Trampoline copies the old vDSO to its old address and redirects its
	// functions to the new vDSO or to system calls.
	Trampoline
)

func (s Strategy) String() string {
	if s == Remap {
		return "remap"
	}
	return "trampoline"
}

// Patch replaces the entry of one old vDSO function.
type Patch struct {
	Symbol Symbol
	// Target is the function in the new vDSO the entry jumps to; its
	// Name is empty when the entry makes the system call Syscall instead.
	Target  Symbol
	Syscall int
}

// Plan describes how the new vDSO serves a process that used the old one.
type Plan struct {
	Strategy Strategy
	// Patches has one entry per old function entry point, sorted by
	// offset (aliases such as time and __vdso_time share one patch).
	Patches []Patch
}

// fallbackSyscalls maps the functions a vDSO may export to the x86-64
// system call with the same arguments and result, used when the new
// kernel's vDSO lacks one.
//
// N.B. getrandom's vDSO form takes two more arguments (an opaque state
// and its length) than the system call. The trampoline ignores them, so
// the caller gets fresh random bytes straight from the kernel. A caller
// that queries the parameters (opaque length ~0) was already set up on
// the old kernel and does not query again.
var fallbackSyscalls = map[string]int{
	"clock_gettime": 228,
	"clock_getres":  229,
	"gettimeofday":  96,
	"time":          201,
	"getcpu":        309,
	"getrandom":     318,
}

// jumpSize is the length of the absolute jump Code writes, and syscallSize
// that of the system call stub: the smallest old function both fit in.
const (
	jumpSize    = 13
	syscallSize = 8
)

// NewPlan compares the vDSO a process was using (old) with the running
// kernel's (cur). It fails, naming the function, when an old function has
// no equivalent in cur and no system call to fall back to, or when an old
// function is too short to hold a jump.
func NewPlan(old, cur *Image) (Plan, error) {
	if sameLayout(old, cur) {
		return Plan{Strategy: Remap}, nil
	}

	plan := Plan{Strategy: Trampoline}
	seen := map[uint64]bool{}
	for _, s := range old.Symbols {
		if seen[s.Offset] {
			continue
		}
		seen[s.Offset] = true
		p, err := patchFor(s, old, cur)
		if err != nil {
			return Plan{}, err
		}
		plan.Patches = append(plan.Patches, p)
	}
	sort.Slice(plan.Patches, func(i, j int) bool { return plan.Patches[i].Symbol.Offset < plan.Patches[j].Symbol.Offset })
	return plan, nil
}

// sameLayout reports whether cur has the size of old and every function
// of old at the same offset.
func sameLayout(old, cur *Image) bool {
	if old.Size != cur.Size {
		return false
	}
	for _, s := range old.Symbols {
		t, ok := cur.Lookup(s.Name, s.Version)
		if !ok || t.Offset != s.Offset {
			return false
		}
	}
	return true
}

// patchFor chooses the replacement of old function s (and its aliases).
func patchFor(s Symbol, old, cur *Image) (Patch, error) {
	room := entryRoom(s, old)
	for _, alias := range aliasesOf(s, old) {
		if t, ok := cur.Lookup(alias.Name, alias.Version); ok {
			if room < jumpSize {
				return Patch{}, fmt.Errorf("vDSO function %s: %d bytes before the next function, a jump needs %d",
					s.Name, room, jumpSize)
			}
			return Patch{Symbol: s, Target: t}, nil
		}
	}
	for _, alias := range aliasesOf(s, old) {
		if nr, ok := fallbackSyscalls[strings.TrimPrefix(alias.Name, "__vdso_")]; ok && room >= syscallSize {
			return Patch{Symbol: s, Syscall: nr}, nil
		}
	}
	return Patch{}, fmt.Errorf("vDSO function %s (%s) is missing from the new kernel's vDSO and has no system call to fall back to",
		s.Name, s.Version)
}

// aliasesOf returns the functions of img at s's offset, s first.
func aliasesOf(s Symbol, img *Image) []Symbol {
	out := []Symbol{s}
	for _, t := range img.Symbols {
		if t.Offset == s.Offset && t != s {
			out = append(out, t)
		}
	}
	return out
}

// entryRoom returns how many bytes from s's entry can be overwritten:
// up to the next function's entry or the end of the image.
func entryRoom(s Symbol, img *Image) uint64 {
	room := img.Size - s.Offset
	for _, t := range img.Symbols {
		if t.Offset > s.Offset && t.Offset-s.Offset < room {
			room = t.Offset - s.Offset
		}
	}
	return room
}

// Code returns the machine code that replaces the entry of p.Symbol, for
// a new vDSO mapped at newBase.
//
// A jump is "movabs $target, %r11; jmp *%r11": r11 is a scratch register
// at a function's entry in the x86-64 ABI. A fallback is "mov $nr, %eax;
// syscall; ret": every fallback takes at most three arguments, and the
// first three travel in rdi, rsi and rdx for both a C call and a system
// call.
func (p Patch) Code(newBase uint64) []byte {
	if p.Target.Name != "" {
		code := []byte{0x49, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xff, 0xe3}
		binary.LittleEndian.PutUint64(code[2:], newBase+p.Target.Offset)
		return code
	}
	code := []byte{0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3}
	binary.LittleEndian.PutUint32(code[1:], uint32(p.Syscall))
	return code
}

// Apply returns a copy of the old vDSO image with every entry of plan
// patched for a new vDSO mapped at newBase, ready to be written to
// ordinary memory at the old vDSO's address.
func (plan Plan) Apply(oldImage []byte, newBase uint64) ([]byte, error) {
	if plan.Strategy != Trampoline {
		return nil, fmt.Errorf("apply vDSO plan: strategy %s needs no patched copy", plan.Strategy)
	}
	out := append([]byte(nil), oldImage...)
	for _, p := range plan.Patches {
		code := p.Code(newBase)
		if p.Symbol.Offset+uint64(len(code)) > uint64(len(out)) {
			return nil, fmt.Errorf("apply vDSO plan: %s at 0x%x does not fit the %d-byte image",
				p.Symbol.Name, p.Symbol.Offset, len(out))
		}
		copy(out[p.Symbol.Offset:], code)
	}
	return out, nil
}
