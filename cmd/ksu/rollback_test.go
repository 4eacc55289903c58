package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"
)

func TestRollbackCmdline(t *testing.T) {
	for _, tt := range []struct {
		name, running, want string
	}{
		{"boot loader parameters dropped", "BOOT_IMAGE=/vmlinuz root=/dev/vda ro", "root=/dev/vda ro panic=10"},
		{"failpoint dropped", "root=/dev/vda KSU_FAILPOINT=restore-process-9", "root=/dev/vda panic=10"},
		{"init_on_free kept", "root=/dev/vda init_on_free=1 panic=5", "root=/dev/vda init_on_free=1 panic=5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := rollbackCmdline(tt.running, ""); got != tt.want {
				t.Errorf("rollbackCmdline(%q, \"\") = %q, want %q", tt.running, got, tt.want)
			}
		})
	}
}

func TestWriteRollbackArchive(t *testing.T) {
	var buf bytes.Buffer
	if err := writeRollbackArchive(&buf, []byte("bzImage"), []byte("initramfs"), "root=/dev/vda"); err != nil {
		t.Fatalf("writeRollbackArchive() = %v", err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatalf("read rollback archive: %v", err)
	}
	got := map[string]string{}
	for _, rec := range recs {
		if rec.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			got[rec.Name+"/"] = ""
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
		if err != nil {
			t.Fatalf("read %s: %v", rec.Name, err)
		}
		got[rec.Name] = string(data)
	}
	want := map[string]string{
		"ksu-rollback/":        "",
		"ksu-rollback/vmlinuz": "bzImage",
		"ksu-rollback/initrd":  "initramfs",
		"ksu-rollback/cmdline": "root=/dev/vda\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rollback archive mismatch (-want +got):\n%s", diff)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("rollback archive is %d bytes, want a multiple of 4 for the next archive", buf.Len())
	}
}
