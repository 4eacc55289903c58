package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testReport = `{"kernel":"6.12.0-new","snapshot_kernel":"6.1.0-old","restored":[812],` +
	`"failures":null,"phases":[{"phase":"restore","duration_ns":2000000}],"pause_ns":1500000000,` +
	`"threads":3,"page_bytes":4096}`

func writeTestReport(t *testing.T) statusOptions {
	t.Helper()
	dir := t.TempDir()
	o := statusOptions{report: filepath.Join(dir, "report.json"), logDir: filepath.Join(dir, "log")}
	if err := os.WriteFile(o.report, []byte(testReport), 0o644); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestRecordStatusOnce(t *testing.T) {
	o := writeTestReport(t)
	var first, second bytes.Buffer
	if err := recordStatus(&first, o); err != nil {
		t.Fatalf("recordStatus() = %v, want nil", err)
	}
	if err := recordStatus(&second, o); err != nil {
		t.Fatalf("second recordStatus() = %v, want nil", err)
	}
	for _, want := range []string{"from kernel 6.1.0-old to 6.12.0-new", "restored: 1 process [812]", "pause: 1.5s"} {
		if !strings.Contains(first.String(), want) {
			t.Errorf("first recordStatus output = %q, want it to contain %q", first.String(), want)
		}
	}
	if second.Len() != 0 {
		t.Errorf("second recordStatus output = %q, want nothing: the report was recorded", second.String())
	}
	copies, _ := filepath.Glob(filepath.Join(o.logDir, "*"))
	if len(copies) != 1 || !strings.HasPrefix(filepath.Base(copies[0]), "report-") {
		t.Errorf("files in the log directory = %q, want one report-TIME.json", copies)
	}
}

func TestRecordStatusWithoutReport(t *testing.T) {
	dir := t.TempDir()
	o := statusOptions{report: filepath.Join(dir, "none.json"), logDir: filepath.Join(dir, "log")}
	var out bytes.Buffer
	if err := recordStatus(&out, o); err != nil {
		t.Fatalf("recordStatus() without a report = %v, want nil", err)
	}
	if out.Len() != 0 {
		t.Errorf("recordStatus() without a report printed %q, want nothing", out.String())
	}
	if _, err := os.Stat(o.logDir); err == nil {
		t.Errorf("recordStatus() without a report created %s, want no directory", o.logDir)
	}
}

// TestSaveReportConcurrent runs saveReport from several goroutines at
// once, as the unit and an operator's ksu status may: exactly one of
// them must make the copy, and none may fail.
func TestSaveReportConcurrent(t *testing.T) {
	o := writeTestReport(t)
	fi, err := os.Stat(o.report)
	if err != nil {
		t.Fatal(err)
	}
	const callers = 8
	var wg sync.WaitGroup
	created := make([]bool, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created[i], errs[i] = saveReport(o.report, o.logDir, fi.ModTime().UTC())
		}()
	}
	wg.Wait()
	n := 0
	for i := range callers {
		if errs[i] != nil {
			t.Errorf("saveReport() call %d = %v, want nil", i, errs[i])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of %d concurrent saveReport calls made the copy, want 1", n, callers)
	}
	leftovers, _ := filepath.Glob(filepath.Join(o.logDir, ".report-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left in the log directory: %q", leftovers)
	}
}
