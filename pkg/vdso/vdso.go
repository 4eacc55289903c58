package vdso

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"sort"
)

// maxImageSize bounds the vDSO images Parse accepts; real ones are two to
// four pages.
const maxImageSize = 1 << 20

// Symbol is one function a vDSO exports.
type Symbol struct {
	Name    string // e.g. "__vdso_clock_gettime"
	Version string // e.g. "LINUX_2.6"
	Offset  uint64 // from the start of the image
	Size    uint64
}

// Image is a parsed vDSO.
type Image struct {
	// Size is the length of the vDSO mapping in bytes.
	Size uint64
	// Symbols lists the exported functions, sorted by offset, then name.
	Symbols []Symbol
}

// Parse reads the exported functions of a vDSO image, as mapped in a
// process (the [vdso] range of /proc/PID/maps).
func Parse(data []byte) (*Image, error) {
	if len(data) == 0 || len(data) > maxImageSize {
		return nil, fmt.Errorf("parse vDSO: size %d out of range (1 to %d)", len(data), maxImageSize)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse vDSO: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("parse vDSO: %v %v %v, want a 64-bit x86-64 shared object", f.Class, f.Machine, f.Type)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("parse vDSO symbols: %w", err)
	}

	img := &Image{Size: uint64(len(data))}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF {
			continue
		}
		if s.Value >= img.Size || s.Size > img.Size-s.Value {
			return nil, fmt.Errorf("parse vDSO: symbol %s at 0x%x+%d lies outside the %d-byte image",
				s.Name, s.Value, s.Size, img.Size)
		}
		img.Symbols = append(img.Symbols, Symbol{Name: s.Name, Version: s.Version, Offset: s.Value, Size: s.Size})
	}
	if len(img.Symbols) == 0 {
		return nil, errors.New("parse vDSO: no exported functions")
	}
	sort.Slice(img.Symbols, func(i, j int) bool {
		a, b := img.Symbols[i], img.Symbols[j]
		return a.Offset < b.Offset || a.Offset == b.Offset && a.Name < b.Name
	})
	return img, nil
}

// Lookup returns the function name with version, or false.
func (img *Image) Lookup(name, version string) (Symbol, bool) {
	for _, s := range img.Symbols {
		if s.Name == name && s.Version == version {
			return s, true
		}
	}
	return Symbol{}, false
}
