package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunExitStatus(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"no command", nil, 2, "usage: ksu"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, ""},
		{"update without kernel", []string{"update", "--yes"}, 2, "--kernel is required"},
		{"update bad flag", []string{"update", "--nope"}, 2, "flag provided but not defined"},
		{"update stray argument", []string{"update", "--kernel", "k", "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(tt.args, &stdout, &stderr)
			if got != tt.want {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tt.args, stderr.String(), tt.wantErr)
			}
		})
	}
}
