package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/phase"
)

// statusOptions are the flags of "ksu status".
type statusOptions struct {
	report string // the run report ksu-init wrote on this boot
	logDir string // where copies of run reports outlive the boot
	json   bool
	record bool // save the copy, and print the summary only when it is new
}

// updateReport is ksu-init's report of a restore, as it writes it to
// /run/ksu/report.json. Unknown fields are kept in the copy, since the
// copy is the file itself.
type updateReport struct {
	Kernel         string       `json:"kernel"`
	SnapshotKernel string       `json:"snapshot_kernel"`
	Restored       []int32      `json:"restored"`
	Failures       []failure    `json:"failures"`
	Phases         []phase.Span `json:"phases"`
	Pause          int64        `json:"pause_ns"`
	Threads        int          `json:"threads"`
	PageBytes      uint64       `json:"page_bytes"`
	// Rollback is set when the restore failed on the new kernel and
	// ksu-init went back to this one with the same snapshot.
	Rollback *rollback `json:"rollback,omitempty"`
	// Units are the systemd services that ksu-init kept systemd from
	// starting on this boot, because restored processes run in their
	// cgroups.
	Units []heldUnit `json:"units,omitempty"`
}

// heldUnit is a systemd service that systemd skips starting while its
// marker file exists.
type heldUnit struct {
	Name   string  `json:"name"`
	PIDs   []int32 `json:"pids"`
	Marker string  `json:"marker"`
}

// rollback is ksu-init's record of a return to the old kernel.
type rollback struct {
	FromKernel string    `json:"from_kernel"`
	Reason     string    `json:"reason"`
	Failures   []failure `json:"failures,omitempty"`
}

// failure is a set of processes that ksu-init did not restore, and why.
type failure struct {
	PIDs   []int32 `json:"pids"`
	Reason string  `json:"reason"`
}

// statusResult is what "ksu status --json" prints.
type statusResult struct {
	// Source is the file the report was read from; Saved is its copy
	// under the log directory.
	Source string        `json:"source"`
	Saved  string        `json:"saved,omitempty"`
	Time   time.Time     `json:"time"`
	Report *updateReport `json:"report"`
	// created is whether this call made the copy Saved.
	created bool
}

func statusFlags(fs *flag.FlagSet) func([]string) error {
	var o statusOptions
	fs.StringVar(&o.report, "report", "/run/ksu/report.json", "the report ksu-init wrote on this boot")
	fs.StringVar(&o.logDir, "log-dir", "/var/log/ksu", "where copies of the reports are kept across boots")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.BoolVar(&o.record, "record", false,
		"save the copy, and print the report only if this call saved it; for "+recordUnitName)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ksu status [--json] [--record]

Show the report of the last update: the kernels, the restored processes
and those that failed with the reason, the time of each phase and how
long the preserved processes were paused.

The report ksu-init writes lives in /run, which the next boot empties.
On its first read, ksu status copies it to LOG-DIR/report-TIME.json
(TIME is the report's modification time in UTC), so the history of
updates survives reboots. Without a report in /run, it shows the newest
copy in LOG-DIR.

On the boot after an update, ksu-init installs the transient unit
`+recordUnitName+` in /run/systemd/system. It runs "ksu status --record"
once, so that the report is copied to LOG-DIR and its summary is in the
journal under the identifier ksu ("journalctl -t ksu") without any
action by the operator.

Options:
`)
		printOptions(fs)
	}
	return func(args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
		}
		if o.record {
			return recordStatus(os.Stdout, o)
		}
		res, err := readStatus(o)
		if err != nil {
			return err
		}
		return printStatus(os.Stdout, res, o.json)
	}
}

// readStatus reads the run report, saving a copy in o.logDir, or the
// newest saved copy when there is no run report.
func readStatus(o statusOptions) (statusResult, error) {
	fi, err := os.Stat(o.report)
	if errors.Is(err, fs.ErrNotExist) {
		return readSaved(o.logDir)
	}
	if err != nil {
		return statusResult{}, fmt.Errorf("read update report: %w", err)
	}
	rep, err := readReport(o.report)
	if err != nil {
		return statusResult{}, err
	}
	res := statusResult{Source: o.report, Time: fi.ModTime().UTC(), Report: rep}
	res.Saved, res.created, err = saveReport(o.report, o.logDir, res.Time)
	if err != nil {
		return res, err
	}
	return res, nil
}

func readReport(path string) (*updateReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read update report: %w", err)
	}
	var rep updateReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("decode update report %s: %w", path, err)
	}
	// ksu-init writes the running kernel into every report, even one of
	// a boot that restored nothing.
	if rep.Kernel == "" {
		return nil, fmt.Errorf("decode update report %s: missing kernel field: not a report of ksu-init", path)
	}
	return &rep, nil
}

// saveReport copies the run report to dir/report-TIME.json unless that
// copy exists, and returns the copy's path and whether this call made it.
// Of two calls at once, exactly one makes the copy.
func saveReport(report, dir string, t time.Time) (string, bool, error) {
	dst := filepath.Join(dir, "report-"+t.Format("20060102T150405Z")+".json")
	if _, err := os.Stat(dst); err == nil {
		return dst, false, nil
	}
	b, err := os.ReadFile(report)
	if err != nil {
		return "", false, fmt.Errorf("read update report: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("create report directory: %w", err)
	}
	// Write under a temporary name first, so that a crash leaves no
	// half-written copy under the final name. The link fails if the
	// copy exists, which decides between two calls at once.
	tmp, err := os.CreateTemp(dir, ".report-*.tmp")
	if err != nil {
		return "", false, fmt.Errorf("save update report: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Link(tmp.Name(), dst)
	}
	if errors.Is(err, fs.ErrExist) {
		return dst, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("save update report %s: %w", dst, err)
	}
	return dst, true, nil
}

// readSaved reads the newest report-*.json in dir. The names sort by
// time because TIME has a fixed width.
func readSaved(dir string) (statusResult, error) {
	names, err := filepath.Glob(filepath.Join(dir, "report-*.json"))
	if err != nil || len(names) == 0 {
		return statusResult{}, fmt.Errorf("no update report: none in /run/ksu or %s; "+
			"ksu-init writes one when it restores processes", dir)
	}
	slices.Sort(names)
	last := names[len(names)-1]
	rep, err := readReport(last)
	if err != nil {
		return statusResult{}, err
	}
	t, _ := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(filepath.Base(last), "report-"), ".json"))
	return statusResult{Source: last, Saved: last, Time: t, Report: rep}, nil
}

func printStatus(w io.Writer, res statusResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	}
	r := res.Report
	fmt.Fprintf(w, "last update: %s, from kernel %s to %s\n", res.Time.Format(time.RFC3339), r.SnapshotKernel, r.Kernel)
	fmt.Fprintf(w, "report: %s", res.Source)
	if res.Saved != "" && res.Saved != res.Source {
		fmt.Fprintf(w, " (saved as %s)", res.Saved)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "restored: %s %s, %s, %s of memory\n",
		plural(len(r.Restored), "process", "processes"), formatPIDs(r.Restored),
		plural(r.Threads, "thread", "threads"), formatBytes(r.PageBytes))
	for _, f := range r.Failures {
		fmt.Fprintf(w, "not restored: %s: %s\n", formatPIDs(f.PIDs), f.Reason)
	}
	for _, u := range r.Units {
		if _, err := os.Stat(u.Marker); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(w, "handed back to systemd: %s, its marker %s is gone and systemd manages the unit again\n",
				u.Name, u.Marker)
			continue
		}
		fmt.Fprintf(w, "held from systemd: %s, restored processes %s run in its cgroup and systemd did not start it\n",
			u.Name, formatPIDs(u.PIDs))
		fmt.Fprintf(w, "  to hand it back: stop processes %s, rm %s, systemctl start %s\n",
			formatPIDs(u.PIDs), u.Marker, u.Name)
	}
	if rb := r.Rollback; rb != nil {
		fmt.Fprintf(w, "rolled back from kernel %s: %s\n", rb.FromKernel, rb.Reason)
		for _, f := range rb.Failures {
			fmt.Fprintf(w, "  failed there: %s: %s\n", formatPIDs(f.PIDs), f.Reason)
		}
	}
	fmt.Fprintf(w, "pause: %s\n", time.Duration(r.Pause).Round(time.Millisecond))
	for _, s := range r.Phases {
		fmt.Fprintf(w, "  %-9s %8s\n", s.Phase, s.Duration.Round(time.Millisecond))
	}
	return nil
}

func formatPIDs(pids []int32) string {
	parts := make([]string, len(pids))
	for i, p := range pids {
		parts[i] = fmt.Sprint(p)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
