package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitStatusAcrossCommands checks that every command maps its
// failures to the exit status that exitHelp documents.
func TestExitStatusAcrossCommands(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	for _, tt := range []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"help man page", []string{"help", "--man"}, 0, ""},
		{"help of a command", []string{"help", "status"}, 0, ""},
		{"help of unknown command", []string{"help", "nope"}, 2, `unknown command "nope"`},
		{"command help flag", []string{"check", "--help"}, 0, "usage: ksu check"},
		{"check without selection", []string{"check", "--config", "/dev/null"}, 2, "give --kernel, --pid or both"},
		{"check bad flag", []string{"check", "--nope"}, 2, "flag provided but not defined"},
		{"check would not proceed", []string{"check", "--pid", "1", "--config", "/dev/null"}, 1,
			"the update would not proceed"},
		{"check missing config", []string{"check", "--pid", "1", "--config", none}, 1, "read config"},
		{"status stray argument", []string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{"status without report", []string{"status", "--report", none, "--log-dir", none}, 1, "no update report"},
		{"dump without out", []string{"dump", "--pid", "1"}, 2, "--pid and --out are required"},
		{"restore without file", []string{"restore"}, 2, "want exactly one snapshot file"},
		{"restore missing file", []string{"restore", none}, 1, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(tt.args, &stdout, &stderr)
			if got != tt.want {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String()+stdout.String(), tt.wantErr) {
				t.Errorf("run(%q) output = %q, want it to contain %q", tt.args, stderr.String(), tt.wantErr)
			}
		})
	}
}

// TestUsageDocumentsExitStatus checks that "ksu help" lists every exit
// status that run returns.
func TestUsageDocumentsExitStatus(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run(help) = %d, want 0", code)
	}
	for _, want := range []string{"Exit status:", "\n  0  ", "\n  1  ", "\n  2  "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("ksu help output does not contain %q", want)
		}
	}
}
