package base

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/pkg/klog/klogtest"
	"github.com/u-root/mkuimage/cpio"
)

// fakeELF returns a minimal x86-64 executable header, with a PT_INTERP
// program header when dynamic is set.
func fakeELF(t *testing.T, dynamic bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	if dynamic {
		hdr.Phoff, hdr.Phnum = 64, 1
	}
	if err := binary.Write(&buf, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	if dynamic {
		interp := "/lib64/ld-linux-x86-64.so.2\x00"
		prog := elf.Prog64{Type: uint32(elf.PT_INTERP), Off: 64 + 56, Filesz: uint64(len(interp)), Memsz: uint64(len(interp))}
		if err := binary.Write(&buf, binary.LittleEndian, prog); err != nil {
			t.Fatal(err)
		}
		buf.WriteString(interp)
	}
	return buf.Bytes()
}

// archive returns a newc archive of recs.
func archive(t *testing.T, recs ...cpio.Record) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	for _, r := range recs {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestVerify(t *testing.T) {
	static := cpio.StaticRecord(fakeELF(t, false), cpio.Info{Name: "bin/ksu-init", Mode: cpio.S_IFREG | 0o755})
	dynamic := cpio.StaticRecord(fakeELF(t, true), cpio.Info{Name: "bin/ksu-init", Mode: cpio.S_IFREG | 0o755})
	console := cpio.CharDev("dev/console", 0o600, 5, 1)
	link := cpio.Symlink("init", "bin/ksu-init")
	for _, tt := range []struct {
		name    string
		recs    []cpio.Record
		wantErr string // empty for success
	}{
		{"valid", []cpio.Record{cpio.Directory("bin", 0o755), static, link, console}, ""},
		{"absolute link", []cpio.Record{static, cpio.Symlink("init", "/bin/ksu-init"), console}, ""},
		{"init is the binary", []cpio.Record{cpio.StaticRecord(fakeELF(t, false), cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}), console}, ""},
		{"no console", []cpio.Record{static, link}, "/dev/console"},
		{"no init", []cpio.Record{static, console}, "/init not found"},
		{"dangling link", []cpio.Record{link, console}, "/bin/ksu-init not found"},
		{"link loop", []cpio.Record{cpio.Symlink("init", "init"), console}, "too many levels"},
		{"dynamic", []cpio.Record{dynamic, link, console}, "dynamically linked"},
		{"not ELF", []cpio.Record{cpio.StaticFile("init", "#!/bin/sh\n", 0o755), console}, "not an ELF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(archive(t, tt.recs...))
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Verify() = %v, want nil error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Verify() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestBuild runs the u-root image builder on this source tree, which
// compiles ksu-init from scratch (about 20 s on two cores).
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: compiles ksu-init with go build -a")
	}
	out := filepath.Join(t.TempDir(), "base.cpio")
	if err := Build(klogtest.New(t), Options{SourceDir: "../../..", Output: out}); err != nil {
		t.Fatalf("Build() = %v, want nil error", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	modes := make(map[string]uint64)
	for _, r := range recs {
		modes[r.Name] = r.Mode
	}
	for name, want := range map[string]uint64{
		".":           cpio.S_IFDIR | 0o755,
		"init":        cpio.S_IFLNK | 0o777,
		"dev/console": cpio.S_IFCHR | 0o600,
		"newroot":     cpio.S_IFDIR | 0o755,
		"ksu":         cpio.S_IFDIR | 0o755,
		"tmp":         cpio.S_IFDIR | 0o1777,
	} {
		if got := modes[name]; got != want {
			t.Errorf("Build() archive entry %q mode = %#o, want %#o", name, got, want)
		}
	}
}

func TestBuildRejectsOtherTree(t *testing.T) {
	dir := t.TempDir()
	err := Build(klogtest.New(t), Options{SourceDir: dir, Output: filepath.Join(dir, "base.cpio")})
	if err == nil || !strings.Contains(err.Error(), "not the ksu source tree") {
		t.Errorf("Build(SourceDir: empty dir) = %v, want an error saying it is not the ksu source tree", err)
	}
}
