package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig(t *testing.T) {
	in := `# the default selection
unit = nginx redis-server   # two services
unit = ksu-demo-svc
cgroup = system.slice/app.service
pid = 12 34
exclude = qemu-ga
all = no
append = quiet
append = loglevel=3 # extra

	pid=56
`
	got, err := parseConfig(strings.NewReader(in), "ksu.conf")
	if err != nil {
		t.Fatalf("parseConfig() = %v, want nil error", err)
	}
	want := config{
		sel: selection{
			pids:     pidList{12, 34, 56},
			cgroups:  stringList{"system.slice/app.service"},
			units:    stringList{"nginx", "redis-server", "ksu-demo-svc"},
			excludes: stringList{"qemu-ga"},
		},
		appendArgs: "quiet loglevel=3",
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(config{}, selection{})); diff != "" {
		t.Errorf("parseConfig() mismatch (-want +got):\n%s", diff)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		wantErr string
	}{
		{"unknown key", "# x\nunits = nginx\n", "/etc/ksu/ksu.conf:2: key units: unknown key"},
		{"no equals", "all\n", `/etc/ksu/ksu.conf:1: invalid line "all": want key = value`},
		{"no key", " = 5\n", `/etc/ksu/ksu.conf:1: invalid line "= 5": want key = value`},
		{"bad pid", "\n\npid = 12 abc\n", `/etc/ksu/ksu.conf:3: key pid: invalid pid "abc"`},
		{"zero pid", "pid = 0\n", `/etc/ksu/ksu.conf:1: key pid: invalid pid "0"`},
		{"bad all", "all = maybe\n", `/etc/ksu/ksu.conf:1: key all: invalid value "maybe": want yes or no`},
		{"empty value", "unit =   # none\n", "/etc/ksu/ksu.conf:1: key unit: missing value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(strings.NewReader(tt.in), "/etc/ksu/ksu.conf")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseConfig(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestStripComment(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"# all", ""},
		{"   # all", ""},
		{"unit = a # b", "unit = a"},
		{"append = x#y", "append = x#y"},
		{"\tall = yes\t#\tz", "all = yes"},
	} {
		if got := stripComment(tt.in); got != tt.want {
			t.Errorf("stripComment(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadConfigMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ksu.conf")
	if cfg, err := loadConfig(path, false); err != nil || !cfg.sel.empty() {
		t.Errorf("loadConfig(missing, default path) = %+v, %v, want an empty config", cfg, err)
	}
	if _, err := loadConfig(path, true); err == nil {
		t.Errorf("loadConfig(missing, --config) = nil error, want the file to be required")
	}
}

// applyConfig parses args as ksu update's selection, --append and common
// flags, then applies the config file content.
func applyConfig(t *testing.T, content string, args ...string) (selection, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ksu.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var sel selection
	var common commonFlags
	var appendArgs string
	sel.register(fs, "preserve")
	common.register(fs)
	fs.StringVar(&appendArgs, "append", "", "")
	if err := fs.Parse(append([]string{"--config", path}, args...)); err != nil {
		t.Fatal(err)
	}
	err := common.apply(fs, &sel, &appendArgs)
	return sel, appendArgs, err
}

func TestConfigFlagsOverride(t *testing.T) {
	const content = "all = yes\nexclude = qemu-ga sshd\nappend = quiet\n"
	for _, tt := range []struct {
		name       string
		args       []string
		want       selection
		wantAppend string
		wantErr    string
	}{
		{name: "config only", want: selection{all: true, excludes: stringList{"qemu-ga", "sshd"}}, wantAppend: "quiet"},
		{name: "exclude flag", args: []string{"--exclude", "cron"},
			want: selection{all: true, excludes: stringList{"cron"}}, wantAppend: "quiet"},
		{name: "append flag", args: []string{"--append", "debug"},
			want: selection{all: true, excludes: stringList{"qemu-ga", "sshd"}}, wantAppend: "debug"},
		{name: "unit flag replaces all", args: []string{"--unit", "nginx"},
			want: selection{units: stringList{"nginx"}}, wantAppend: "quiet"},
		{name: "unit flag and exclude flag", args: []string{"--unit", "nginx", "--exclude", "x"},
			wantErr: "exclude applies to --all only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sel, appendArgs, err := applyConfig(t, content, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("apply(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("apply(%q) = %v, want nil error", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, sel, cmp.AllowUnexported(selection{})); diff != "" {
				t.Errorf("apply(%q) selection mismatch (-want +got):\n%s", tt.args, diff)
			}
			if appendArgs != tt.wantAppend {
				t.Errorf("apply(%q) append = %q, want %q", tt.args, appendArgs, tt.wantAppend)
			}
		})
	}
	sel, _, err := applyConfig(t, "unit = nginx\n", "--pid", "7")
	if err != nil || len(sel.units) != 0 || len(sel.pids) != 1 {
		t.Errorf("apply(--pid 7) over unit = nginx: %+v, %v, want only pid 7", sel, err)
	}
}
