package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// debianTmpConf is Debian 12's /usr/lib/tmpfiles.d/tmp.conf, comments
// left out.
const debianTmpConf = "D /tmp 1777 root root -\n#q /var/tmp 1777 root root 30d\n"

// newTmpfilesRoot returns a root with Debian's tmp.conf and files below
// /tmp.
func newTmpfilesRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range map[string]string{
		"usr/lib/tmpfiles.d/tmp.conf":   debianTmpConf,
		"usr/lib/tmpfiles.d/other.conf": "D /var/lib/other 0755 root root -\n",
		"tmp/keep":                      "k",
		"tmp/dir/keep2":                 "k",
		"tmp/gone":                      "g",
	} {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestKeepTmpPathsWrites(t *testing.T) {
	root := newTmpfilesRoot(t)
	kept := []string{"/tmp/keep", "/tmp/dir/keep2", "/tmp/a b%"}
	written, err := keepTmpPaths(root, kept)
	if err != nil {
		t.Fatalf("keepTmpPaths(%q) = %v, want nil error", kept, err)
	}
	want := []string{keptConf, "/run/tmpfiles.d/tmp.conf"}
	if diff := cmp.Diff(want, written); diff != "" {
		t.Errorf("keepTmpPaths(%q) files mismatch (-want +got):\n%s", kept, diff)
	}
	for path, want := range map[string]string{
		keptConf: "# Written by ksu-init: paths below /tmp that restored processes use.\n" +
			"x /tmp/keep\nx /tmp/dir/keep2\nx \"/tmp/a b%%\"\n",
		"/run/tmpfiles.d/tmp.conf": "d /tmp 1777 root root -\n#q /var/tmp 1777 root root 30d\n",
	} {
		got, err := os.ReadFile(root + path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
}

func TestKeepTmpPathsNone(t *testing.T) {
	root := newTmpfilesRoot(t)
	written, err := keepTmpPaths(root, nil)
	if err != nil || written != nil {
		t.Errorf("keepTmpPaths(nil) = %q, %v, want no file and nil error", written, err)
	}
	if _, err := os.Stat(filepath.Join(root, "run")); err == nil {
		t.Errorf("keepTmpPaths(nil) created %s/run, want nothing written", root)
	}
}

func TestKeepTmpPathsEtcWins(t *testing.T) {
	root := newTmpfilesRoot(t)
	etc := filepath.Join(root, "etc", "tmpfiles.d")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "tmp.conf"), []byte("D! /tmp 1777 root root 10d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := keepTmpPaths(root, []string{"/tmp/keep"})
	if err == nil || !strings.Contains(err.Error(), "/etc/tmpfiles.d/tmp.conf") {
		t.Errorf("keepTmpPaths() = %v, want an error naming /etc/tmpfiles.d/tmp.conf", err)
	}
}

func TestTmpfilesQuote(t *testing.T) {
	for _, tt := range []struct {
		path, want string
	}{
		{"/tmp/plain", "/tmp/plain"},
		{"/tmp/50%", "/tmp/50%%"},
		{"/tmp/a b", `"/tmp/a b"`},
		{`/tmp/q"\`, `"/tmp/q\"\\"`},
	} {
		got, err := tmpfilesQuote(tt.path)
		if err != nil || got != tt.want {
			t.Errorf("tmpfilesQuote(%q) = %q, %v, want %q", tt.path, got, err, tt.want)
		}
	}
	if got, err := tmpfilesQuote("/tmp/new\nline"); err == nil {
		t.Errorf("tmpfilesQuote(newline) = %q, want an error", got)
	}
}

// TestIntegrationKeepTmpPathsBoot runs systemd-tmpfiles' boot-time
// removal inside a scratch root, with and without the kept paths: only
// with them must the paths survive.
func TestIntegrationKeepTmpPathsBoot(t *testing.T) {
	tmpfiles, err := exec.LookPath("systemd-tmpfiles")
	if err != nil {
		t.Skip("skipping: systemd-tmpfiles not found")
	}
	run := func(root string) {
		out, err := exec.Command(tmpfiles, "--root="+root, "--boot", "--remove", "--create").CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-tmpfiles --root=%s: %v\n%s", root, err, out)
		}
	}
	plain := newTmpfilesRoot(t)
	run(plain)
	if _, err := os.Stat(filepath.Join(plain, "tmp", "keep")); err == nil {
		t.Fatalf("without kept paths, systemd-tmpfiles left %s/tmp/keep, want it removed", plain)
	}

	root := newTmpfilesRoot(t)
	if _, err := keepTmpPaths(root, []string{"/tmp/keep", "/tmp/dir/keep2"}); err != nil {
		t.Fatal(err)
	}
	run(root)
	for _, p := range []string{"tmp/keep", "tmp/dir/keep2"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("after systemd-tmpfiles --boot --remove: %v, want %s kept", err, p)
		}
	}
}
