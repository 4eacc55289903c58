package qemu

import (
	"io"
	"os"
	"strings"
	"testing"
)

// StartT boots a guest for a test and closes it in t.Cleanup, also when the
// test fails or panics. An empty cfg.WorkDir becomes t.TempDir(). A failure
// to start ends the test. When the test has failed, the cleanup logs the
// last console lines and keeps a copy of console.log outside the work
// directory, which the testing package removes.
func StartT(t testing.TB, cfg Config) *Guest {
	t.Helper()
	if cfg.WorkDir == "" {
		cfg.WorkDir = t.TempDir()
	}
	g, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start guest: %v", err)
	}
	t.Logf("qemu: accel %s (%s)", g.Accel(), g.AccelReason())
	t.Cleanup(func() {
		g.Close()
		if !t.Failed() {
			return
		}
		t.Logf("guest console, last %d lines:\n  | %s", tailLines,
			strings.Join(g.console.tail(tailLines), "\n  | "))
		if kept, err := keepFile(g.ConsoleLog()); err == nil {
			t.Logf("full console log kept at %s", kept)
		}
	})
	return g
}

// keepFile copies path to a new file in os.TempDir() and returns its name.
func keepFile(path string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.CreateTemp("", "ksu-console-*.log")
	if err != nil {
		return "", err
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return "", err
	}
	return dst.Name(), nil
}
