// Command ksu is the operator's tool on the running system: it updates
// the kernel of the machine with kexec and, in later steps, carries the
// chosen processes across the switch.
//
// Exit status: 0 on success, 1 when the command failed (nothing was
// changed unless the message states otherwise), 2 for invalid usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `usage: ksu COMMAND [OPTIONS]

Commands:
  check    check whether an update could run, without changing anything
  update   switch the running machine to another kernel with kexec
  status   show the report of the last update
  dump     write a snapshot of running process trees to a file
  restore  recreate the processes of a snapshot file
  help     show this text, "ksu help COMMAND" for one command, or
           "ksu help --man" for the manual page

Run "ksu COMMAND --help" for the options of a command, and
"ksu help --man" for the manual page in roff.

` + configHelp + "\n" + exitHelp

// command is one subcommand: its flags are registered on fs, and run
// executes it with the remaining arguments.
type command struct {
	summary string
	flags   func(fs *flag.FlagSet) func(args []string) error
}

var commands = map[string]command{
	"check":   {"check whether an update could run, without changing anything", checkFlags},
	"status":  {"show the report of the last update", statusFlags},
	"update":  {"switch the running machine to another kernel with kexec", updateFlags},
	"dump":    {"write a snapshot of running process trees to a file", dumpFlags},
	"restore": {"recreate the processes of a snapshot file", restoreFlags},
}

// errUsage marks an error that is the caller's usage, exit status 2.
var errUsage = errors.New("invalid usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		return help(args[1:], stdout, stderr)
	}

	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "ksu: unknown command %q\n%s", name, usage)
		return 2
	}
	fs := flag.NewFlagSet("ksu "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	exec := cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	if err := exec(fs.Args()); err != nil {
		fmt.Fprintf(stderr, "ksu %s: %v\n", name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if args[0] == "--man" {
		if err := writeMan(stdout); err != nil {
			fmt.Fprintf(stderr, "ksu help: write man page: %v\n", err)
			return 1
		}
		return 0
	}
	if _, ok := commands[args[0]]; !ok {
		fmt.Fprintf(stderr, "ksu help: unknown command %q\n", args[0])
		return 2
	}
	return run([]string{args[0], "--help"}, stdout, stderr)
}
