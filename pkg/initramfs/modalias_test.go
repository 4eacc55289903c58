package initramfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDeviceModaliases(t *testing.T) {
	sys := t.TempDir()
	devices := map[string]string{
		"bus/pci/devices/0000:00:04.0/modalias":  "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
		"bus/pci/devices/0000:00:03.0/modalias":  "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00\n",
		"bus/virtio/devices/virtio0/modalias":    "virtio:d00000002v00001AF4\n",
		"bus/cpu/devices/cpu0/modalias":          "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001\n",
		"bus/cpu/devices/cpu1/modalias":          "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001\n",
		"bus/platform/devices/serial8250/driver": "not a modalias file",
		"bus/platform/devices/empty/modalias":    "\n",
	}
	for name, content := range devices {
		p := filepath.Join(sys, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}

	got, err := DeviceModaliases(sys)
	if err != nil {
		t.Fatalf("DeviceModaliases(%q) = %v, want nil error", sys, err)
	}
	want := []string{
		"cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001",
		"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
		"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
		"virtio:d00000002v00001AF4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DeviceModaliases(%q) mismatch (-want +got):\n%s", sys, diff)
	}
}
