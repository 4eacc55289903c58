package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0", "1.0+deb12u1", -1},
		{"1.0a", "1.0", 1},
		{"1.0a", "1.0+", -1}, // letters sort before other characters
		{"1:1.0", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.0-10", "1.0-9", 1},
		{"1.0-1", "1.0", 1},
		{"007", "7", 0},
		{"1.000000000000000000000001", "1.1", 0},
		{"99999999999999999999", "100000000000000000000", -1},
		{"6.1.0-50-cloud-amd64", "6.12.117+deb12-cloud-amd64", -1},
		{"6.1.0-50-cloud-amd64", "6.1.0-9-cloud-amd64", 1},
		{"6.1.0-50-amd64", "6.1.0-50-cloud-amd64", -1},
	} {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestLatestKernel(t *testing.T) {
	for _, tt := range []struct {
		name    string
		files   []string
		running string
		want    string
		wantErr string
	}{
		{"newer major", []string{"vmlinuz-6.1.0-50-cloud-amd64", "vmlinuz-6.12.117+deb12-cloud-amd64"},
			"6.1.0-50-cloud-amd64", "vmlinuz-6.12.117+deb12-cloud-amd64", ""},
		{"older only", []string{"vmlinuz-6.1.0-50-cloud-amd64", "vmlinuz-6.12.117+deb12-cloud-amd64"},
			"6.12.117+deb12-cloud-amd64", "", "newer than the running 6.12.117+deb12-cloud-amd64"},
		{"abi number", []string{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-11-amd64"},
			"6.1.0-9-amd64", "vmlinuz-6.1.0-11-amd64", ""},
		{"older abi", []string{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-11-amd64"},
			"6.1.0-11-amd64", "", "--kernel "},
		{"other files", []string{"vmlinuz-6.1.0-50-amd64", "config-7.0.0-1-amd64", "initrd.img-7.0.0-1-amd64"},
			"6.1.0-10-amd64", "vmlinuz-6.1.0-50-amd64", ""},
		{"only running", []string{"vmlinuz-6.1.0-50-amd64"}, "6.1.0-50-amd64", "", "no kernel in"},
		{"empty", nil, "6.1.0-50-amd64", "", "no kernel in"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := latestKernel(dir, tt.running)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("latestKernel(%q) = %q, %v, want error containing %q", tt.running, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != filepath.Join(dir, tt.want) {
				t.Errorf("latestKernel(%q) = %q, %v, want %q", tt.running, got, err, tt.want)
			}
		})
	}
}

func TestLatestKernelSkipsLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz-6.1.0-50-amd64"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("vmlinuz-6.1.0-50-amd64", filepath.Join(dir, "vmlinuz-9.9.9-1-amd64")); err != nil {
		t.Fatal(err)
	}
	got, err := latestKernel(dir, "6.0.0-1-amd64")
	if want := filepath.Join(dir, "vmlinuz-6.1.0-50-amd64"); err != nil || got != want {
		t.Errorf("latestKernel() = %q, %v, want %q", got, err, want)
	}
}
