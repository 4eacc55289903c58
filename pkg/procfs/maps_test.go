package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testRoot = "testdata/proc"

// testPid is the process captured under testdata/proc.
const testPid = 15661

func TestParseMapsLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		line string
		want Mapping
	}{
		{
			"file text",
			"00400000-00507000 r-xp 00000000 fe:00 9999377                            /tmp/capture/capture",
			Mapping{Start: 0x400000, End: 0x507000, Perms: Perms{Read: true, Exec: true}, Major: 0xfe, Inode: 9999377, Path: "/tmp/capture/capture"},
		},
		{
			"anonymous",
			"7f2d380c7000-7f2d380cb000 rw-p 00000000 00:00 0 ",
			Mapping{Start: 0x7f2d380c7000, End: 0x7f2d380cb000, Perms: Perms{Read: true, Write: true}},
		},
		{
			"shared memfd",
			"7f9176e3c000-7f9176e3d000 r--s 00000000 00:01 1033                       /memfd:ksu test (deleted)",
			Mapping{Start: 0x7f9176e3c000, End: 0x7f9176e3d000, Perms: Perms{Read: true, Shared: true}, Minor: 1, Inode: 1033, Path: "/memfd:ksu test (deleted)"},
		},
		{
			"vdso",
			"7f9177345000-7f9177347000 r-xp 00000000 00:00 0                          [vdso]",
			Mapping{Start: 0x7f9177345000, End: 0x7f9177347000, Perms: Perms{Read: true, Exec: true}, Path: "[vdso]"},
		},
		{
			"vsyscall",
			"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
			Mapping{Start: 0xffffffffff600000, End: 0xffffffffff601000, Perms: Perms{Exec: true}, Path: "[vsyscall]"},
		},
		{
			"file offset and large device",
			"7f3b1c2d5000-7f3b1c2fb000 r--p 00026000 103:02 1835023                   /usr/lib/x86_64-linux-gnu/libc.so.6",
			Mapping{Start: 0x7f3b1c2d5000, End: 0x7f3b1c2fb000, Perms: Perms{Read: true}, Offset: 0x26000, Major: 0x103, Minor: 2, Inode: 1835023, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMapsLine(tt.line)
			if err != nil {
				t.Fatalf("parseMapsLine(%q) = %v, want nil error", tt.line, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseMapsLine(%q) mismatch (-want +got):\n%s", tt.line, diff)
			}
			if got.Perms.String() != strings.Fields(tt.line)[1] {
				t.Errorf("Perms.String() = %q, want %q", got.Perms.String(), strings.Fields(tt.line)[1])
			}
		})
	}
}

func TestParseMapsLineInvalid(t *testing.T) {
	for _, line := range []string{
		"",
		"00400000 r-xp 00000000 fe:00 1 /x",
		"00500000-00400000 r-xp 00000000 fe:00 1 /x",
		"00400000-00507000 rwxq 00000000 fe:00 1 /x",
		"00400000-00507000 r-xpp 00000000 fe:00 1 /x",
		"00400000-00507000 r-xp 0000zz00 fe:00 1 /x",
		"00400000-00507000 r-xp 00000000 fe00 1 /x",
		"00400000-00507000 r-xp 00000000 fe:00 -1 /x",
	} {
		if got, err := parseMapsLine(line); err == nil {
			t.Errorf("parseMapsLine(%q) = %+v, want an error", line, got)
		}
	}
}

func TestReadMaps(t *testing.T) {
	maps, err := ReadMaps(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 64 {
		t.Errorf("ReadMaps(%d) returned %d mappings, want 64", testPid, len(maps))
	}
	var names []string
	for _, m := range maps {
		if strings.HasPrefix(m.Path, "[") {
			names = append(names, m.Path)
		}
	}
	want := []string{"[heap]", "[vvar]", "[vvar_vclock]", "[vdso]", "[stack]", "[vsyscall]"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("special mappings mismatch (-want +got):\n%s", diff)
	}
	if _, err := ReadMaps(testRoot, 1); err == nil {
		t.Errorf("ReadMaps(%q, 1) = nil error, want one for a missing process", testRoot)
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add("00400000-00507000 r-xp 00000000 fe:00 9999377                            /tmp/capture/capture\n")
	f.Add("7f2d380c7000-7f2d380cb000 rw-p 00000000 00:00 0 \n")
	f.Fuzz(func(t *testing.T, data string) {
		maps, err := ParseMaps(strings.NewReader(data))
		if err != nil {
			return
		}
		for _, m := range maps {
			if m.End < m.Start {
				t.Errorf("ParseMaps(%q) returned %+v, which ends before it starts", data, m)
			}
		}
	})
}
