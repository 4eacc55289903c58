package klog

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLiftRatelimit(t *testing.T) {
	for _, tt := range []struct {
		setting   string // content of printk_devkmsg before
		wantAfter string // content after LiftRatelimit
	}{
		{"ratelimit\n", "on\n"},
		{"on\n", "on\n"},
		{"off\n", "off\n"},
	} {
		t.Run(tt.setting, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "printk_devkmsg")
			if err := os.WriteFile(path, []byte(tt.setting), 0o644); err != nil {
				t.Fatal(err)
			}
			restore, err := LiftRatelimit(path)
			if err != nil {
				t.Fatalf("LiftRatelimit(%q) = %v, want nil", tt.setting, err)
			}
			if got := readSetting(t, path); got != tt.wantAfter {
				t.Errorf("after LiftRatelimit, printk_devkmsg = %q, want %q", got, tt.wantAfter)
			}
			if err := restore(); err != nil {
				t.Fatalf("restore() = %v, want nil", err)
			}
			if got := readSetting(t, path); got != tt.setting {
				t.Errorf("after restore, printk_devkmsg = %q, want %q", got, tt.setting)
			}
		})
	}
}

func TestLiftRatelimitMissing(t *testing.T) {
	restore, err := LiftRatelimit(filepath.Join(t.TempDir(), "none"))
	if err == nil {
		t.Errorf("LiftRatelimit(missing file) = nil error, want an error")
	}
	if restore == nil {
		t.Fatalf("LiftRatelimit(missing file) returned a nil restore, want a no-op")
	}
	if err := restore(); err != nil {
		t.Errorf("restore() after a failed lift = %v, want nil", err)
	}
}

func TestKmsgRestoreRatelimitWithoutOpen(t *testing.T) {
	k := NewKmsg("test", nil)
	if err := k.RestoreRatelimit(); err != nil {
		t.Errorf("RestoreRatelimit() before OpenKernelLog = %v, want nil", err)
	}
}

func readSetting(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
