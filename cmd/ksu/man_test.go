package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// manMacros are the requests and man(7) macros that writeMan may use.
var manMacros = map[string]bool{
	"TH": true, "SH": true, "SS": true, "PP": true, "TP": true, "RS": true, "RE": true,
	"B": true, "I": true, "BI": true, "BR": true, "nf": true, "fi": true, "nh": true,
}

func manPage(t *testing.T) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help", "--man"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run(help --man) = %d, want 0; stderr:\n%s", code, stderr.String())
	}
	return stdout.String()
}

func TestManKnownMacros(t *testing.T) {
	for i, line := range strings.Split(manPage(t), "\n") {
		if !strings.HasPrefix(line, ".") && !strings.HasPrefix(line, "'") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(line, ".'"), " ")
		if !manMacros[name] {
			t.Errorf("man page line %d = %q, want a known macro (one of %v)", i+1, line, manMacros)
		}
	}
}

func TestManSections(t *testing.T) {
	page := manPage(t)
	for _, want := range []string{
		".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH COMMANDS", ".SH CONFIG FILE",
		".SH EXIT STATUS", ".SH FILES", ".SH SEE ALSO",
		".SS check", ".SS update", ".SS status", ".SS dump", ".SS restore",
		`.BI "\-\-kernel " VMLINUZ`, `.B \-\-dry\-run`, `.TP` + "\n.B 2\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page does not contain %q", want)
		}
	}
	// The selection and config file texts have sections of their own,
	// so the commands must not repeat them.
	if n := strings.Count(page, roffEscape("Selection: --pid takes")); n != 1 {
		t.Errorf("man page has the selection text %d times, want 1", n)
	}
}

func TestManRendersWithoutWarnings(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("skipping: man is not installed")
	}
	cmd := exec.Command("man", "--warnings", "-l", "-")
	cmd.Env = append(cmd.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	cmd.Stdin = strings.NewReader(manPage(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("man -l - = %v, want success; stderr:\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("man -l - wrote warnings:\n%s", stderr.String())
	}
	for _, want := range []string{"EXIT STATUS", "--dry-run", "/var/log/ksu/report-TIME.json"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("rendered man page does not contain %q", want)
		}
	}
}

func TestRoffEscape(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"plain words", "plain words"},
		{"--pid and -v", `\-\-pid and \-v`},
		{"[--json]", `[\-\-json]`},
		{"ksu-init's in-memory copy", "ksu-init's in-memory copy"},
		{".starts with a period", `\&.starts with a period`},
		{"'quoted", `\&'quoted`},
		{`a\b`, `a\eb`},
	} {
		if got := roffEscape(tt.in); got != tt.want {
			t.Errorf("roffEscape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
