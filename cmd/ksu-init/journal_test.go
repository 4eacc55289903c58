package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/pkg/klog/klogtest"
)

// fakeRoot returns a root directory with an executable ksu at ksuPath
// (none if empty) and a report unless noReport.
func fakeRoot(t *testing.T, ksuPath string, noReport bool) string {
	t.Helper()
	root := t.TempDir()
	if ksuPath != "" {
		p := filepath.Join(root, ksuPath)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if !noReport {
		p := filepath.Join(root, reportFile)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestInstallRecordUnit(t *testing.T) {
	root := fakeRoot(t, "/usr/local/sbin/ksu", false)
	installRecordUnit(klogtest.New(t), root)

	unit, err := os.ReadFile(filepath.Join(root, runtimeUnitDir, recordUnitName))
	if err != nil {
		t.Fatalf("read installed unit: %v", err)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/sbin/ksu status --record\n",
		"Type=oneshot\n",
		"SyslogIdentifier=ksu\n",
		"ConditionPathExists=/run/ksu/report.json\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit %s = %q, want it to contain %q", recordUnitName, unit, want)
		}
	}
	link := filepath.Join(root, runtimeUnitDir, "multi-user.target.wants", recordUnitName)
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("read wants link: %v", err)
	}
	if want := "../" + recordUnitName; target != want {
		t.Errorf("wants link %s -> %q, want %q", link, target, want)
	}
	if _, err := os.Stat(link); err != nil {
		t.Errorf("wants link %s does not resolve: %v", link, err)
	}
}

func TestInstallRecordUnitSkips(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ksuPath  string
		noReport bool
	}{
		{"plain boot without report", "/usr/sbin/ksu", true},
		{"root without ksu", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t, tt.ksuPath, tt.noReport)
			installRecordUnit(klogtest.New(t), root)
			if _, err := os.Stat(filepath.Join(root, runtimeUnitDir)); err == nil {
				t.Errorf("installRecordUnit created %s, want nothing", runtimeUnitDir)
			}
		})
	}
}

func TestInstallRecordUnitTwice(t *testing.T) {
	root := fakeRoot(t, "/usr/sbin/ksu", false)
	dir := filepath.Join(root, runtimeUnitDir)
	for i := range 2 {
		if err := writeRecordUnit(dir, "/usr/sbin/ksu"); err != nil {
			t.Fatalf("writeRecordUnit() call %d = %v, want nil", i+1, err)
		}
	}
}
