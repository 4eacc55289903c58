package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ksu-project/ksu/pkg/restore"
)

func restoreFlags(fs *flag.FlagSet) func([]string) error {
	var verbose bool
	fs.BoolVar(&verbose, "verbose", false, "log each restore step to stderr")
	fs.BoolVar(&verbose, "v", false, "the same as --verbose")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ksu restore [--verbose] FILE

Recreate the processes of the snapshot FILE on the running kernel, with
their PIDs, memory, threads and files, and return once they run. The
original processes must be gone. Restored roots become children of ksu
and are reparented to init when ksu exits.

Options:
`)
		printOptions(fs)
	}
	return func(args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%w: want exactly one snapshot file", errUsage)
		}
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		var opts restore.Options
		if verbose {
			opts.Logf = func(format string, a ...any) { fmt.Fprintf(os.Stderr, "ksu restore: "+format+"\n", a...) }
		}
		stats, err := restore.Restore(f, opts)
		if err != nil {
			return err
		}
		fmt.Printf("restored %s, %s, %d bytes of memory in %v\n",
			plural(stats.Processes, "process", "processes"), plural(stats.Threads, "thread", "threads"),
			stats.Pages, stats.Total.Round(1e6))
		return nil
	}
}
