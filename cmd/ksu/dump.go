package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ksu-project/ksu/pkg/dump"
)

// pidList is a repeatable --pid flag.
type pidList []int

func (p *pidList) String() string { return fmt.Sprint(*p) }

func (p *pidList) Set(s string) error {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return fmt.Errorf("invalid pid %q", s)
	}
	*p = append(*p, pid)
	return nil
}

func dumpFlags(fs *flag.FlagSet) func([]string) error {
	var pids pidList
	var out string
	var leaveRunning, kill bool
	fs.Var(&pids, "pid", "root of a process tree to dump; repeat for several trees (required)")
	fs.StringVar(&out, "out", "", "snapshot file to write, mode 0600 (required)")
	fs.BoolVar(&leaveRunning, "leave-running", false, "let the processes run on after the dump")
	fs.BoolVar(&kill, "kill", false, "kill the processes after the dump")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ksu dump --pid PID [--pid PID...] --out FILE [--leave-running|--kill]

Write a snapshot of the process trees rooted at each PID to FILE. By
default the processes stay stopped (SIGSTOP) after the dump. On any
error they resume where they were and FILE is removed.

Options:
`)
		printOptions(fs)
	}
	return func(args []string) error {
		switch {
		case len(args) > 0:
			return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
		case len(pids) == 0 || out == "":
			return fmt.Errorf("%w: --pid and --out are required", errUsage)
		case leaveRunning && kill:
			return fmt.Errorf("%w: --leave-running and --kill exclude each other", errUsage)
		}
		if err := checkDumpRoots(pids); err != nil {
			return err
		}
		opts := dump.Options{PIDs: pids, Producer: "ksu dump"}
		if leaveRunning {
			opts.Exit = dump.ExitRunning
		} else if kill {
			opts.Exit = dump.ExitKill
		}
		return dumpToFile(out, opts)
	}
}

// checkDumpRoots rejects roots that check rejects too: init, ksu or one
// of its ancestors, a missing process or one given twice. Stopping init
// or ksu's own shell would stop the machine or ksu itself.
func checkDumpRoots(roots []int) error {
	var reasons []string
	for _, blockers := range checkRootsDetail(roots) {
		for _, b := range blockers {
			reasons = append(reasons, fmt.Sprintf("process %d: %s", b.PID, b.Reason))
		}
	}
	if len(reasons) > 0 {
		slices.Sort(reasons)
		return fmt.Errorf("cannot dump the requested processes, nothing was stopped:\n  %s", strings.Join(reasons, "\n  "))
	}
	return nil
}

func dumpToFile(path string, opts dump.Options) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	stopped := findJobStops(opts.PIDs)
	stats, err := dump.Dump(f, opts)
	if errors.Is(err, dump.ErrLeftStopped) {
		err = errors.Join(err, resumeTrees(opts.PIDs, stopped))
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	fmt.Printf("dumped %s, %s, %d bytes of memory in %v\n",
		plural(stats.Processes, "process", "processes"), plural(stats.Threads, "thread", "threads"),
		stats.Pages, stats.Total.Round(1e6))
	return nil
}
