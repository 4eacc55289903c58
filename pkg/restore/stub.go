package restore

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Stub layout: the ELF headers and code fill the first page, the next
// two pages are scratch memory for the arguments of injected calls.
const (
	stubPages   = 3
	codeOffset  = 128 // after the ELF header (64 bytes) and one program header (56)
	siteOffset  = codeOffset + 5
	lowestStub  = 0x10000 // the default vm.mmap_min_addr
	scratchSize = 2 * 4096
)

// stubCode loops on pause(2):
//
//	loop: mov eax, 34   ; b8 22 00 00 00
//	      syscall       ; 0f 05
//	      jmp loop      ; eb f7
//
// A task cloned by an injected clone3 returns from the syscall
// instruction into the jmp, so it waits in pause until restore seizes it.
var stubCode = []byte{0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7}

// buildStub returns a static x86-64 ELF executable that loads at base.
func buildStub(base uint64) []byte {
	page := uint64(os.Getpagesize())
	img := make([]byte, codeOffset+len(stubCode))
	copy(img, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1}) // 64-bit, little-endian, version 1
	le := binary.LittleEndian
	le.PutUint16(img[16:], 2)  // ET_EXEC
	le.PutUint16(img[18:], 62) // EM_X86_64
	le.PutUint32(img[20:], 1)
	le.PutUint64(img[24:], base+codeOffset) // e_entry
	le.PutUint64(img[32:], 64)              // e_phoff
	le.PutUint16(img[52:], 64)              // e_ehsize
	le.PutUint16(img[54:], 56)              // e_phentsize
	le.PutUint16(img[56:], 1)               // e_phnum
	ph := img[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 7) // PF_R|PF_W|PF_X
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(len(img)))
	le.PutUint64(ph[40:], stubPages*page)
	le.PutUint64(ph[48:], page)
	copy(img[codeOffset:], stubCode)
	return img
}

// stubMemfd writes the stub into a memfd and returns it.
func stubMemfd(base uint64) (*os.File, error) {
	fd, err := unix.MemfdCreate("ksu-restore-stub", 0)
	if err != nil {
		return nil, fmt.Errorf("create stub memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ksu-restore-stub")
	if _, err := f.Write(buildStub(base)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write stub: %w", err)
	}
	return f, nil
}

// stubBase returns the lowest address from lowestStub up where the stub
// overlaps no saved mapping of any process.
func stubBase(procs []*snapshot.Process) (uint64, error) {
	size := uint64(stubPages * os.Getpagesize())
	base := uint64(lowestStub)
	for range 1 << 16 {
		clash := false
		for _, p := range procs {
			if p.MM == nil {
				continue // a zombie
			}
			for _, v := range p.MM.VMAs {
				if v.Start < base+size && base < v.End {
					base = v.End
					clash = true
				}
			}
		}
		if !clash {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free %d-byte range for the restore stub", size)
}
