package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadSmaps(t *testing.T) {
	smaps, err := ReadSmaps(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := ReadMaps(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	if len(smaps) != len(maps) {
		t.Fatalf("ReadSmaps(%d) returned %d areas, ReadMaps %d", testPid, len(smaps), len(maps))
	}
	for i := range maps {
		if diff := cmp.Diff(maps[i], smaps[i].Mapping); diff != "" {
			t.Errorf("area %d of smaps and maps mismatch (-maps +smaps):\n%s", i, diff)
		}
	}

	text := smaps[0]
	if got, want := text.Sizes["Rss"], uint64(1052*1024); got != want {
		t.Errorf("Sizes[Rss] of %s = %d, want %d", text.Path, got, want)
	}
	if !text.HasFlag("ex") || text.HasFlag("wr") {
		t.Errorf("VmFlags of %s = %v, want ex without wr", text.Path, text.VmFlags)
	}

	// The capture advised one anonymous area MADV_DONTFORK and another
	// MADV_WIPEONFORK and MADV_DONTDUMP.
	var dontfork, wipe int
	for _, m := range smaps {
		if m.HasFlag("dc") {
			dontfork++
		}
		if m.HasFlag("wf") && m.HasFlag("dd") {
			wipe++
		}
	}
	if dontfork != 1 || wipe != 1 {
		t.Errorf("areas with dc = %d and with wf and dd = %d, want 1 and 1", dontfork, wipe)
	}
}

func TestParseSmapsInvalid(t *testing.T) {
	for _, data := range []string{
		"Rss: 4 kB\n",
		"00400000-00507000 r-xp 00000000 fe:00 1 /x\nRss: x kB\n",
		"00400000-00507000 r-xp 00000000 fe:00 1 /x\nRss: 99999999999999999 kB\n",
	} {
		if got, err := ParseSmaps(strings.NewReader(data)); err == nil {
			t.Errorf("ParseSmaps(%q) = %+v, want an error", data, got)
		}
	}
}

func FuzzParseSmaps(f *testing.F) {
	f.Add("00400000-00507000 r-xp 00000000 fe:00 9999377 /tmp/x\nSize:               1052 kB\nTHPeligible:    0\nVmFlags: rd ex mr mw me \n")
	f.Fuzz(func(t *testing.T, data string) {
		smaps, err := ParseSmaps(strings.NewReader(data))
		if err != nil {
			return
		}
		for _, m := range smaps {
			if m.Sizes == nil {
				t.Errorf("ParseSmaps(%q) returned an area without Sizes", data)
			}
		}
	})
}
