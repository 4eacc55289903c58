package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// statusFixture is a dpkg status file with kernel packages in several
// states.
const statusFixture = `Package: kmod
Status: install ok installed
Version: 30+20221128-1

Package: linux-image-6.1.0-50-cloud-amd64
Status: install ok unpacked
Version: 6.1.176-1
Description: Linux 6.1 for x86-64 cloud (signed)
 The Linux kernel 6.1 and modules for use on cloud platforms.

Package: linux-image-6.1.0-47-cloud-amd64
Status: install ok installed
Version: 6.1.170-3

Package: linux-image-6.1.0-40-cloud-amd64
Status: deinstall ok config-files
Version: 6.1.153-1

Package: linux-image-6.1.0-41-cloud-amd64-unsigned
Status: install ok half-configured
Version: 6.1.154-1

Package: linux-image-6.1.0-42-cloud-amd64
Status: install reinstreq half-installed
Version: 6.1.155-1`

func TestKernelPackageState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte(statusFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		release, pkg, state string
	}{
		{"6.1.0-50-cloud-amd64", "linux-image-6.1.0-50-cloud-amd64", "unpacked"},
		{"6.1.0-47-cloud-amd64", "linux-image-6.1.0-47-cloud-amd64", "installed"},
		{"6.1.0-40-cloud-amd64", "", ""},
		{"6.1.0-41-cloud-amd64", "linux-image-6.1.0-41-cloud-amd64-unsigned", "half-configured"},
		{"6.1.0-42-cloud-amd64", "linux-image-6.1.0-42-cloud-amd64", "half-installed"},
		{"6.12.117+deb12-cloud-amd64", "", ""},
		{"6.1.0-50-cloud", "", ""},
	} {
		pkg, state := kernelPackageState(path, tt.release)
		if pkg != tt.pkg || state != tt.state {
			t.Errorf("kernelPackageState(%q) = %q, %q, want %q, %q", tt.release, pkg, state, tt.pkg, tt.state)
		}
	}
	if pkg, state := kernelPackageState(filepath.Join(t.TempDir(), "absent"), "6.1.0-50-cloud-amd64"); pkg != "" || state != "" {
		t.Errorf("kernelPackageState(no status file) = %q, %q, want empty", pkg, state)
	}
}

func TestCheckModuleIndex(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(status, []byte(statusFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(old string) { dpkgStatus = old }(dpkgStatus)
	dpkgStatus = status
	modules := t.TempDir()
	indexed := filepath.Join(modules, "6.1.0-47-cloud-amd64")
	if err := os.MkdirAll(indexed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(indexed, "modules.dep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		release string
		want    string // "" for no error
	}{
		{"6.1.0-47-cloud-amd64", ""},
		{"6.1.0-50-cloud-amd64", "package linux-image-6.1.0-50-cloud-amd64 is unpacked but not configured: run dpkg --configure -a"},
		{"6.1.0-41-cloud-amd64", "is half-configured but not configured: run dpkg --configure -a"},
		{"6.1.0-42-cloud-amd64", "package linux-image-6.1.0-42-cloud-amd64 is half-installed: install it again"},
		{"6.1.0-40-cloud-amd64", "install the kernel's package, or run depmod 6.1.0-40-cloud-amd64"},
	} {
		err := checkModuleIndex(modules, tt.release)
		if tt.want == "" {
			if err != nil {
				t.Errorf("checkModuleIndex(%q) = %v, want nil", tt.release, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "modules.dep") {
			t.Errorf("checkModuleIndex(%q) = %v, want an error naming modules.dep and %q", tt.release, err, tt.want)
		}
	}
}
