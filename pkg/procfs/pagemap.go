package procfs

import (
	"encoding/binary"
	"fmt"
	"os"
)

// PageEntry is the 64-bit pagemap entry of one virtual page, described
// in the kernel's Documentation/admin-guide/mm/pagemap.rst. The page
// frame number and swap location in the low bits are not interpreted:
// the kernel zeroes them for readers without CAP_SYS_ADMIN and they mean
// nothing on another kernel.
type PageEntry uint64

// Bits of a pagemap entry.
const (
	pagePresent   = 1 << 63
	pageSwapped   = 1 << 62
	pageFileOrShm = 1 << 61
	pageExclusive = 1 << 56
	pageSoftDirty = 1 << 55
)

// Present reports whether the page is in RAM.
func (e PageEntry) Present() bool { return e&pagePresent != 0 }

// Swapped reports whether the page is in swap.
func (e PageEntry) Swapped() bool { return e&pageSwapped != 0 }

// FileOrShared reports whether the page is a file page or shared
// anonymous memory, as opposed to private anonymous memory.
func (e PageEntry) FileOrShared() bool { return e&pageFileOrShm != 0 }

// Exclusive reports whether only this process maps the page.
func (e PageEntry) Exclusive() bool { return e&pageExclusive != 0 }

// SoftDirty reports whether the page was written since the soft-dirty bits
// were last cleared (echo 4 > /proc/PID/clear_refs).
func (e PageEntry) SoftDirty() bool { return e&pageSoftDirty != 0 }

// Untouched reports whether the page was never faulted in: neither in RAM
// nor in swap. A private anonymous page that is untouched reads as
// zeros, so a checkpoint need not save it.
func (e PageEntry) Untouched() bool { return e&(pagePresent|pageSwapped) == 0 }

// pagemapEntrySize is the size of one entry in the pagemap file.
const pagemapEntrySize = 8

// ReadPagemap reads the pagemap entries of the pages in [start, end) of
// process pid from root/PID/pagemap. Both addresses must be multiples of
// the page size.
func ReadPagemap(root string, pid int, start, end uint64) ([]PageEntry, error) {
	pageSize := uint64(os.Getpagesize())
	if start%pageSize != 0 || end%pageSize != 0 || end < start {
		return nil, fmt.Errorf("read pagemap of process %d: invalid range [%#x, %#x) for %d-byte pages", pid, start, end, pageSize)
	}
	f, err := os.Open(path(root, pid, "pagemap"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, (end-start)/pageSize*pagemapEntrySize)
	off := int64(start / pageSize * pagemapEntrySize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read pagemap of process %d for [%#x, %#x): %w", pid, start, end, err)
	}
	return ParsePagemap(buf)
}

// ParsePagemap splits raw pagemap contents into entries.
func ParsePagemap(data []byte) ([]PageEntry, error) {
	if len(data)%pagemapEntrySize != 0 {
		return nil, fmt.Errorf("pagemap data of %d bytes is not a whole number of %d-byte entries", len(data), pagemapEntrySize)
	}
	entries := make([]PageEntry, len(data)/pagemapEntrySize)
	for i := range entries {
		entries[i] = PageEntry(binary.NativeEndian.Uint64(data[i*pagemapEntrySize:]))
	}
	return entries, nil
}
