package scenario

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ksu-project/ksu/pkg/kexec"
)

// TestStripSignature strips the signature of the new kernel of the test
// images and checks that only the certificate table and its data
// directory entry changed.
func TestStripSignature(t *testing.T) {
	im, err := FindImages()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	signed, err := os.ReadFile(im.Kernel(im.NewRelease))
	if err != nil {
		t.Fatal(err)
	}
	before, err := kexec.ParseSignature(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := StripSignature(signed)
	if err != nil {
		t.Fatalf("StripSignature(%s) = %v, want nil error", im.Kernel(im.NewRelease), err)
	}
	if got, want := int64(len(unsigned)), before.Offset; got != want {
		t.Errorf("StripSignature: %d bytes, want %d, the offset of the certificate table", got, want)
	}
	after, err := kexec.ParseSignature(bytes.NewReader(unsigned), int64(len(unsigned)))
	if err != nil {
		t.Fatalf("ParseSignature(stripped) = %v, want nil error", err)
	}
	if !after.PE || after.Signed() {
		t.Errorf("ParseSignature(stripped) = %+v, want a PE image without a certificate table", after)
	}
	entry, err := securityEntryOffset(signed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range unsigned {
		if unsigned[i] != signed[i] && (i < entry || i >= entry+dataDirEntryLen) {
			t.Fatalf("StripSignature changed byte %d outside the security entry [%d, %d)", i, entry, entry+dataDirEntryLen)
		}
	}

	path := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(path, unsigned, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := kexec.ReadImage(path)
	if err != nil {
		t.Fatalf("ReadImage(stripped) = %v, want nil error", err)
	}
	if img.Release != im.NewRelease {
		t.Errorf("ReadImage(stripped).Release = %q, want %q", img.Release, im.NewRelease)
	}
	if _, err := StripSignature(unsigned); err == nil {
		t.Errorf("StripSignature(stripped) = nil error, want one: there is no table to strip")
	}
}
