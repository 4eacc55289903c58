package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolvePort(t *testing.T) {
	root := t.TempDir()
	sysDir := filepath.Join(root, "sys")
	devDir := filepath.Join(root, "dev")
	for name, port := range map[string]string{"vport1p1": "org.qemu.guest_agent.0", "vport1p2": "org.ksu.test"} {
		mustWrite(t, filepath.Join(sysDir, name, "name"), port+"\n")
		mustWrite(t, filepath.Join(devDir, name), "")
	}
	mustWrite(t, filepath.Join(sysDir, "vport2p1", "name"), "org.ksu.nodev\n")
	existing := filepath.Join(root, "existing")
	mustWrite(t, existing, "")

	for _, tt := range []struct {
		name    string
		path    string
		want    string
		wantErr bool
	}{
		{"existing path", existing, existing, false},
		{"found by name", "/dev/virtio-ports/org.ksu.test", filepath.Join(devDir, "vport1p2"), false},
		{"unknown name", "/dev/virtio-ports/org.ksu.absent", "", true},
		{"name without device node", "/dev/virtio-ports/org.ksu.nodev", "", true},
		{"missing path elsewhere", filepath.Join(root, "absent"), "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolvePort(tt.path, sysDir, devDir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("resolvePort(%q) = %q, %v; want error %v", tt.path, got, err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("resolvePort(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
