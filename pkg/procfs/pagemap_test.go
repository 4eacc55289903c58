package procfs

import (
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPageEntryBits(t *testing.T) {
	for _, tt := range []struct {
		name                                                    string
		entry                                                   PageEntry
		present, swapped, fileOrShared, exclusive, dirty, fresh bool
	}{
		{"untouched", 0, false, false, false, false, false, true},
		{"private anonymous page", 1<<63 | 1<<56 | 1<<55 | 0x1234, true, false, false, true, true, false},
		{"file page", 1<<63 | 1<<61, true, false, true, false, false, false},
		{"swapped", 1<<62 | 0x3e0, false, true, false, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.entry
			got := []bool{e.Present(), e.Swapped(), e.FileOrShared(), e.Exclusive(), e.SoftDirty(), e.Untouched()}
			want := []bool{tt.present, tt.swapped, tt.fileOrShared, tt.exclusive, tt.dirty, tt.fresh}
			for i, name := range []string{"Present", "Swapped", "FileOrShared", "Exclusive", "SoftDirty", "Untouched"} {
				if got[i] != want[i] {
					t.Errorf("PageEntry(%#x).%s() = %v, want %v", uint64(e), name, got[i], want[i])
				}
			}
		})
	}
}

func TestParsePagemap(t *testing.T) {
	data := binary.NativeEndian.AppendUint64(nil, 1<<63)
	data = binary.NativeEndian.AppendUint64(data, 0)
	got, err := ParsePagemap(data)
	if err != nil || len(got) != 2 || !got[0].Present() || !got[1].Untouched() {
		t.Errorf("ParsePagemap(% x) = %v, %v, want a present and an untouched page", data, got, err)
	}
	if _, err := ParsePagemap(data[:12]); err == nil {
		t.Errorf("ParsePagemap of 12 bytes = nil error, want an error")
	}
}

// TestReadPagemapSelf maps four pages into this process, touches two and
// checks what pagemap reports. It needs no privilege: every process may
// read its own pagemap, with the page frame numbers zeroed.
func TestReadPagemapSelf(t *testing.T) {
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 4*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	mem[2*page] = 1
	start := uint64(uintptr(sliceAddr(mem)))

	entries, err := ReadPagemap("/proc", os.Getpid(), start, start+uint64(4*page))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("ReadPagemap returned %d entries, want 4", len(entries))
	}
	for i, wantPresent := range []bool{true, false, true, false} {
		e := entries[i]
		if e.Present() != wantPresent || e.Untouched() == wantPresent {
			t.Errorf("page %d: Present() = %v, Untouched() = %v, want present %v", i, e.Present(), e.Untouched(), wantPresent)
		}
		if wantPresent && (!e.Exclusive() || e.FileOrShared()) {
			t.Errorf("page %d: Exclusive() = %v, FileOrShared() = %v, want a private anonymous page", i, e.Exclusive(), e.FileOrShared())
		}
	}
	if _, err := ReadPagemap("/proc", os.Getpid(), start+1, start+uint64(page)); err == nil {
		t.Errorf("ReadPagemap of an unaligned range = nil error, want an error")
	}
}

// FuzzParsePagemap checks that ParsePagemap takes exactly the inputs made
// of whole 8-byte entries and returns one entry for each.
func FuzzParsePagemap(f *testing.F) {
	f.Add(binary.NativeEndian.AppendUint64(nil, 1<<63|1<<56|0x1234))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParsePagemap(data)
		if (err == nil) != (len(data)%8 == 0) {
			t.Fatalf("ParsePagemap(%d bytes) = %v", len(data), err)
		}
		if err == nil && len(entries) != len(data)/8 {
			t.Fatalf("ParsePagemap(%d bytes) = %d entries, want %d", len(data), len(entries), len(data)/8)
		}
		for i, e := range entries {
			if got := binary.NativeEndian.Uint64(data[8*i:]); uint64(e) != got {
				t.Fatalf("ParsePagemap() entry %d = %#x, want %#x", i, uint64(e), got)
			}
		}
	})
}
