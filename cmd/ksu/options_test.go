package main

import (
	"bytes"
	"flag"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrintOptions(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("v", false, "the same as --verbose")
	fs.String("out", "", "snapshot file to write")
	fs.String("base", "/usr/lib/ksu/ksu-init.cpio", "the ksu-init base initramfs")
	fs.String("label", "", "a `WORD` to print")
	var b bytes.Buffer
	fs.SetOutput(&b)

	printOptions(fs)

	want := `  --base FILE
      the ksu-init base initramfs (default: /usr/lib/ksu/ksu-init.cpio)
  --label WORD
      a WORD to print
  --out FILE
      snapshot file to write
  -v
      the same as --verbose
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("printOptions() mismatch (-want +got):\n%s", diff)
	}
}
