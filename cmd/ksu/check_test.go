package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGrubDefaultKernel(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  string
		want string
	}{
		{"default 0", "set default=\"0\"\nmenuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1.0-50-amd64 root=UUID=x ro\n}\n" +
			"menuentry 'other' {\n\tlinux /boot/vmlinuz-6.12.117+deb12-amd64\n}\n", "/boot/vmlinuz-6.1.0-50-amd64"},
		{"no default", "menuentry 'Debian' {\n  linux /vmlinuz-6.1.0-50-amd64\n}\n", "/vmlinuz-6.1.0-50-amd64"},
		{"saved default", "set default=\"${saved_entry}\"\nmenuentry 'Debian' {\n  linux /boot/vmlinuz-1\n}\n", ""},
		{"default 1", "set default=1\nmenuentry 'a' {\n  linux /boot/vmlinuz-1\n}\n", ""},
		{"linux before entry", "linux /boot/vmlinuz-1\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := grubDefaultKernel(tt.cfg); got != tt.want {
				t.Errorf("grubDefaultKernel(%q) = %q, want %q", tt.cfg, got, tt.want)
			}
		})
	}
}

func TestReadLockdown(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		content string
		want    string
	}{
		{"[none] integrity confidentiality\n", "none"},
		{"none [integrity] confidentiality\n", "integrity"},
		{"none integrity [confidentiality]\n", "confidentiality"},
		{"garbage\n", "unknown"},
	} {
		path := filepath.Join(dir, "lockdown")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readLockdown(path); got != tt.want {
			t.Errorf("readLockdown(%q) = %q, want %q", tt.content, got, tt.want)
		}
	}
	if got := readLockdown(filepath.Join(dir, "missing")); got != "unknown" {
		t.Errorf("readLockdown(missing) = %q, want unknown", got)
	}
}

func TestReadKconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	cfg := "CONFIG_KEXEC_FILE=y\n# CONFIG_KEXEC_SIG_FORCE is not set\nCONFIG_LOCALVERSION=\"-x\"\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		option string
		want   string
	}{
		{"CONFIG_KEXEC_FILE", "y"},
		{"CONFIG_KEXEC_SIG_FORCE", "n"},
		{"CONFIG_LOCALVERSION", `"-x"`},
		{"CONFIG_ABSENT", "n"},
	} {
		if got := readKconfig(path, tt.option); got != tt.want {
			t.Errorf("readKconfig(%s) = %q, want %q", tt.option, got, tt.want)
		}
	}
	if got := readKconfig(path+".missing", "CONFIG_KEXEC_FILE"); got != "unknown" {
		t.Errorf("readKconfig(missing file) = %q, want unknown", got)
	}
}

func TestParseKBFields(t *testing.T) {
	in := "55d0-7ffe ---p 00000000 00:00 0 [rollup]\nRss:  1024 kB\nAnonymous: 12 kB\nTHPeligible: 0\nVmFlags: rd\n"
	got, err := parseKBFields(strings.NewReader(in), "smaps_rollup")
	if err != nil {
		t.Fatalf("parseKBFields() = %v, want nil error", err)
	}
	want := map[string]uint64{"Rss": 1 << 20, "Anonymous": 12 << 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseKBFields() mismatch (-want +got):\n%s", diff)
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 << 10, "1.5 MiB"}, {3 << 30, "3.0 GiB"},
	} {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestCheckKernelMissing(t *testing.T) {
	dir := t.TempDir()
	k := checkKernel(checkOptions{kernel: filepath.Join(dir, "vmlinuz-none"), base: filepath.Join(dir, "base.cpio"),
		modulesDir: dir})
	if k.Loadable {
		t.Errorf("checkKernel(missing file).Loadable = true, want false")
	}
	if len(k.Problems) < 2 {
		t.Errorf("checkKernel(missing file).Problems = %q, want the image and the base initramfs", k.Problems)
	}
}

func TestCheckRootsDetail(t *testing.T) {
	got := checkRootsDetail([]int{1, os.Getpid(), 1 << 30})
	for _, tt := range []struct {
		pid  int
		want string
	}{
		{1, "init cannot be preserved"},
		{os.Getpid(), "ksu itself"},
		{1 << 30, "not found"},
	} {
		if len(got[tt.pid]) == 0 || !strings.Contains(got[tt.pid][0].Reason, tt.want) {
			t.Errorf("checkRootsDetail()[%d] = %+v, want a reason containing %q", tt.pid, got[tt.pid], tt.want)
		}
	}
}

// startChild starts argv and kills it, by its pid, when the test ends.
func startChild(t *testing.T, argv ...string) int {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", argv, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

func TestCheckTreePreservable(t *testing.T) {
	pid := startChild(t, "sleep", "60")
	trees := checkTreesDetail([]int{pid})
	if len(trees) != 1 {
		t.Fatalf("checkTreesDetail(%d) returned %d trees, want 1", pid, len(trees))
	}
	tree := trees[0]
	if !tree.Preservable {
		t.Errorf("checkTreesDetail(%d) blockers = %+v, want none", pid, tree.Blockers)
	}
	if tree.RSSBytes == 0 {
		t.Errorf("checkTreesDetail(%d).RSSBytes = 0, want the resident memory of sleep", pid)
	}
	var out bytes.Buffer
	if err := printCheck(&out, runCheck(checkOptions{pids: pidList{pid}}), true); err != nil {
		t.Fatal(err)
	}
	var rep checkReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode check JSON: %v\n%s", err, out.String())
	}
	if len(rep.Trees) != 1 || rep.Trees[0].Root != pid || rep.Memory == nil {
		t.Errorf("check JSON = %s, want one tree rooted at %d and a memory section", out.String(), pid)
	}
}

func TestIntegrationCheckNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a UTS namespace")
	}
	pid := startChild(t, "unshare", "--uts", "sleep", "60")
	// unshare execs sleep once the namespace exists.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep := runCheck(checkOptions{pids: pidList{pid}})
	if rep.Proceed {
		t.Errorf("runCheck(--pid %d).Proceed = true, want false", pid)
	}
	var out bytes.Buffer
	if err := printCheck(&out, rep, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "namespace uts (namespace)") {
		t.Errorf("ksu check --pid %d output = %q, want it to name the uts namespace", pid, out.String())
	}
}
