package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const sampleReport = `{"kernel":"6.12.117+deb12-cloud-amd64","snapshot_kernel":"6.1.0-50-cloud-amd64",
"restored":[412,413],"failures":[{"pids":[500],"reason":"restore process 500: invalid fd"}],
"phases":[{"phase":"restore","start":"2026-12-04T18:00:00Z","duration_ns":120000000}],
"pause_ns":2500000000,"threads":3,"page_bytes":1048576,"clocks":{"pause_ns":1}}`

func writeReport(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(sampleReport), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestStatusSavesReport(t *testing.T) {
	dir := t.TempDir()
	o := statusOptions{report: filepath.Join(dir, "run/report.json"), logDir: filepath.Join(dir, "log")}
	mtime := time.Date(2026, 12, 4, 18, 0, 1, 0, time.UTC)
	writeReport(t, o.report, mtime)

	res, err := readStatus(o)
	if err != nil {
		t.Fatalf("readStatus() = %v, want nil error", err)
	}
	wantSaved := filepath.Join(o.logDir, "report-20261204T180001Z.json")
	if res.Saved != wantSaved {
		t.Errorf("readStatus().Saved = %q, want %q", res.Saved, wantSaved)
	}
	saved, err := os.ReadFile(wantSaved)
	if err != nil || string(saved) != sampleReport {
		t.Errorf("saved copy = %q, %v, want the run report byte for byte", saved, err)
	}
	want := &updateReport{
		Kernel: "6.12.117+deb12-cloud-amd64", SnapshotKernel: "6.1.0-50-cloud-amd64",
		Restored: []int32{412, 413}, Failures: []failure{{PIDs: []int32{500}, Reason: "restore process 500: invalid fd"}},
		Phases: res.Report.Phases, Pause: 2500000000, Threads: 3, PageBytes: 1 << 20,
	}
	if diff := cmp.Diff(want, res.Report); diff != "" {
		t.Errorf("readStatus().Report mismatch (-want +got):\n%s", diff)
	}

	// A second read keeps the one copy.
	if _, err := readStatus(o); err != nil {
		t.Fatalf("second readStatus() = %v, want nil error", err)
	}
	copies, _ := filepath.Glob(filepath.Join(o.logDir, "*"))
	if len(copies) != 1 {
		t.Errorf("log directory after two reads = %q, want one copy", copies)
	}
}

func TestStatusFallsBackToSaved(t *testing.T) {
	dir := t.TempDir()
	o := statusOptions{report: filepath.Join(dir, "run/report.json"), logDir: filepath.Join(dir, "log")}
	writeReport(t, filepath.Join(o.logDir, "report-20261201T100000Z.json"), time.Now())
	writeReport(t, filepath.Join(o.logDir, "report-20261203T100000Z.json"), time.Now())

	res, err := readStatus(o)
	if err != nil {
		t.Fatalf("readStatus() = %v, want nil error", err)
	}
	if want := filepath.Join(o.logDir, "report-20261203T100000Z.json"); res.Source != want {
		t.Errorf("readStatus().Source = %q, want the newest copy %q", res.Source, want)
	}
	if want := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC); !res.Time.Equal(want) {
		t.Errorf("readStatus().Time = %v, want %v", res.Time, want)
	}
}

func TestStatusNoReport(t *testing.T) {
	dir := t.TempDir()
	_, err := readStatus(statusOptions{report: filepath.Join(dir, "report.json"), logDir: filepath.Join(dir, "log")})
	if err == nil || !strings.Contains(err.Error(), "no update report") {
		t.Errorf("readStatus(no report) = %v, want a \"no update report\" error", err)
	}
}

func TestStatusDamagedReport(t *testing.T) {
	for _, content := range []string{`{"restored": [1,`, `{}`, `{"restored": [1]}`, `[]`} {
		path := filepath.Join(t.TempDir(), "report.json")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readStatus(statusOptions{report: path, logDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "decode update report") {
			t.Errorf("readStatus(%s) = %v, want a decode error", content, err)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	dir := t.TempDir()
	o := statusOptions{report: filepath.Join(dir, "report.json"), logDir: filepath.Join(dir, "log")}
	writeReport(t, o.report, time.Date(2026, 12, 4, 18, 0, 1, 0, time.UTC))
	res, err := readStatus(o)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := printStatus(&text, res, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"from kernel 6.1.0-50-cloud-amd64 to 6.12.117+deb12-cloud-amd64",
		"restored: 2 processes [412 413], 3 threads, 1.0 MiB",
		"not restored: [500]: restore process 500: invalid fd",
		"pause: 2.5s",
		"restore      120ms",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("printStatus() = %q, want it to contain %q", text.String(), want)
		}
	}
	var js bytes.Buffer
	if err := printStatus(&js, res, true); err != nil {
		t.Fatal(err)
	}
	var back statusResult
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("decode status JSON: %v", err)
	}
	if diff := cmp.Diff(res.Report.Restored, back.Report.Restored); diff != "" {
		t.Errorf("status JSON restored mismatch (-want +got):\n%s", diff)
	}
}

func TestCommandExitStatus(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"check without selection", []string{"check"}, 2, "give --kernel, --pid or both"},
		{"check missing kernel", []string{"check", "--kernel", filepath.Join(dir, "vmlinuz-x")}, 1, "would not proceed"},
		{"check kernel and latest", []string{"check", "--kernel", "k", "--latest"}, 2, "not both"},
		{"status without report", []string{"status", "--report", filepath.Join(dir, "r.json"),
			"--log-dir", dir}, 1, "no update report"},
		{"status stray argument", []string{"status", "x"}, 2, `unexpected argument "x"`},
		{"update kernel and latest", []string{"update", "--kernel", "k", "--latest"}, 2, "not both"},
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

func TestPrintStatusRollback(t *testing.T) {
	const report = `{"kernel":"6.1.0-50-cloud-amd64","snapshot_kernel":"6.1.0-50-cloud-amd64",
"restored":[412],"phases":[],"pause_ns":1,
"rollback":{"from_kernel":"6.12.117+deb12-cloud-amd64","reason":"restore failed",
"failures":[{"pids":[412],"reason":"restore process 412: injected failure"}]}}`
	dir := t.TempDir()
	o := statusOptions{report: filepath.Join(dir, "report.json"), logDir: filepath.Join(dir, "log")}
	if err := os.WriteFile(o.report, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := readStatus(o)
	if err != nil {
		t.Fatal(err)
	}

	var text bytes.Buffer
	if err := printStatus(&text, res, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rolled back from kernel 6.12.117+deb12-cloud-amd64: restore failed",
		"failed there: [412]: restore process 412: injected failure",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("printStatus() = %q, want it to contain %q", text.String(), want)
		}
	}

	var js bytes.Buffer
	if err := printStatus(&js, res, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"from_kernel": "6.12.117+deb12-cloud-amd64"`) {
		t.Errorf("status JSON = %s, want the rollback's from_kernel", js.String())
	}
}

func TestPrintStatusHeldUnits(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "redis-server.service")
	if err := os.WriteFile(held, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := statusResult{Report: &updateReport{Units: []heldUnit{
		{Name: "redis-server.service", PIDs: []int32{412}, Marker: held},
		{Name: "app.service", PIDs: []int32{500}, Marker: filepath.Join(dir, "app.service")},
	}}}
	var text bytes.Buffer
	if err := printStatus(&text, res, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"held from systemd: redis-server.service, restored processes [412]",
		"to hand it back: stop processes [412], rm " + held,
		"handed back to systemd: app.service",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("printStatus() = %q, want it to contain %q", text.String(), want)
		}
	}
	if strings.Contains(text.String(), "held from systemd: app.service") {
		t.Errorf("printStatus() = %q, want app.service, whose marker is gone, not shown as held", text.String())
	}
}
