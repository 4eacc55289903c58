package ptrace

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Injection is the state that one injected call borrows from a thread:
// its own registers and, when Syscall had to write a syscall
// instruction, the code under it. Site is the address of the call.
type Injection struct {
	TID  int
	Site uintptr
	Regs Regs
	// Code holds the original bytes at Site when Syscall patched them,
	// and is empty otherwise.
	Code []byte
}

// A Journal learns about each injected call before the call borrows
// anything, so that a watchdog outside the tracer's process can give
// the thread back its state with Undo if that process dies during the
// call.
type Journal interface {
	// Borrow is called before the registers of thread inj.TID change
	// and before any code is patched. An error cancels the call.
	Borrow(inj Injection) error
	// Return is called once the thread has its registers and code
	// back, before it leaves its stop.
	Return(tid int) error
}

// WithJournal makes the Tracer pass every injected call to j. A nil j
// changes nothing.
func WithJournal(j Journal) Option {
	return func(t *Tracer) {
		if j != nil {
			t.journal = j
		}
	}
}

// noJournal is the Journal of a Tracer without WithJournal.
type noJournal struct{}

func (noJournal) Borrow(Injection) error { return nil }
func (noJournal) Return(int) error       { return nil }

// MarshalText encodes inj as four space-separated fields: the thread id,
// the site, the registers as hex of their little-endian bytes, and the
// patched code in hex or "-".
func (inj Injection) MarshalText() ([]byte, error) {
	regs, err := binary.Append(nil, binary.LittleEndian, inj.Regs)
	if err != nil {
		return nil, fmt.Errorf("encode registers of thread %d: %w", inj.TID, err)
	}
	code := "-"
	if len(inj.Code) > 0 {
		code = hex.EncodeToString(inj.Code)
	}
	return fmt.Appendf(nil, "%d %#x %s %s", inj.TID, inj.Site, hex.EncodeToString(regs), code), nil
}

// UnmarshalText decodes what MarshalText encodes.
func (inj *Injection) UnmarshalText(text []byte) error {
	fields := strings.Fields(string(text))
	if len(fields) != 4 {
		return fmt.Errorf("decode injection %q: %d fields, want 4", text, len(fields))
	}
	tid, err := strconv.Atoi(fields[0])
	if err != nil || tid <= 0 {
		return fmt.Errorf("decode injection %q: invalid thread id", text)
	}
	site, err := strconv.ParseUint(fields[1], 0, 64)
	if err != nil {
		return fmt.Errorf("decode injection %q: invalid site: %w", text, err)
	}
	raw, err := hex.DecodeString(fields[2])
	if err != nil {
		return fmt.Errorf("decode injection %q: invalid registers: %w", text, err)
	}
	var regs Regs
	if n, err := binary.Decode(raw, binary.LittleEndian, &regs); err != nil || n != len(raw) {
		return fmt.Errorf("decode injection %q: registers are %d bytes, want %d", text, len(raw), binary.Size(regs))
	}
	var code []byte
	if fields[3] != "-" {
		if code, err = hex.DecodeString(fields[3]); err != nil || len(code) != len(syscallInsn) {
			return fmt.Errorf("decode injection %q: invalid patched code", text)
		}
	}
	*inj = Injection{TID: tid, Site: uintptr(site), Regs: regs, Code: code}
	return nil
}

// ErrMovedOn is returned by Undo when the thread is neither at the
// injected call nor back at its own registers, so it ran code after its
// tracer died and Undo leaves it as it is.
var ErrMovedOn = errors.New("thread ran on after its tracer died")

// Undo gives thread inj.TID back the state that the injected call inj
// borrowed, after the tracer that injected it died. It seizes the
// thread and, if the thread is still at the call (at Site or just after
// it), puts back the patched code and the registers, then detaches.
//
// The thread must not run an instruction of its own between the
// tracer's death and Undo. A group-stop in effect holds it (GroupStop),
// and it stays stopped.
//
// NOTE: Undo puts back registers and code, not what the call did. A
// call that ran, such as the dump's mmap of a scratch page, leaves its
// effect: one page stays mapped in that case.
func Undo(inj Injection) error {
	t := NewTracer()
	defer t.Close()

	if err := t.Seize(inj.TID, 0); err != nil {
		return fmt.Errorf("undo injected call: %w", err)
	}
	if _, err := t.Interrupt(inj.TID); err != nil {
		return fmt.Errorf("undo injected call: %w", err)
	}
	regs, err := t.GetRegs(inj.TID)
	if err != nil {
		return fmt.Errorf("undo injected call: %w", err)
	}

	switch regs.Rip {
	case uint64(inj.Site), uint64(inj.Site) + uint64(len(syscallInsn)):
	case inj.Regs.Rip:
		if regs == inj.Regs {
			break // the tracer gave the registers back before it died
		}
		fallthrough
	default:
		return fmt.Errorf("undo injected call in thread %d: %w (rip %#x, call at %#x, own rip %#x)",
			inj.TID, ErrMovedOn, regs.Rip, inj.Site, inj.Regs.Rip)
	}

	if len(inj.Code) > 0 {
		if err := t.PokeData(inj.TID, inj.Site, inj.Code); err != nil {
			return fmt.Errorf("undo injected call: %w", err)
		}
	}
	if err := t.SetRegs(inj.TID, inj.Regs); err != nil {
		return fmt.Errorf("undo injected call: %w", err)
	}
	if err := t.Detach(inj.TID); err != nil {
		return fmt.Errorf("undo injected call: %w", err)
	}
	return nil
}
