package main

import (
	"cmp"
	"flag"
	"fmt"
	"strings"
)

// optionArgs names the argument of each flag that takes one, for the
// help text and the man page; flag would print "string" or "value".
var optionArgs = map[string]string{
	"append":          "ARGS",
	"base":            "FILE",
	"cgroup":          "PATH",
	"config":          "FILE",
	"exclude":         "COMM",
	"kernel":          "VMLINUZ",
	"log-dir":         "DIR",
	"modules-dir":     "DIR",
	"out":             "FILE",
	"pid":             "PID",
	"report":          "FILE",
	"rollback-kernel": "VMLINUZ",
	"spill":           "DIR",
	"unit":            "NAME",
}

// printOptions writes the flags of fs to its output in the form of GNU
// tools: "--name ARG" for a long flag and "-v" for a one-letter one,
// each followed by its usage and default, indented.
func printOptions(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := optionSpec(f)
		fmt.Fprintf(w, "  %s\n      %s\n", name, usage)
	})
}

// optionSpec returns how flag f is written, such as "--out FILE", and
// its usage text with the default value appended when it has one.
func optionSpec(f *flag.Flag) (name, usage string) {
	arg, usage := flag.UnquoteUsage(f)
	name = optionDashes(f.Name) + f.Name
	if arg != "" {
		name += " " + cmp.Or(optionArgs[f.Name], strings.ToUpper(arg))
	}
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		usage += " (default: " + f.DefValue + ")"
	}
	return name, usage
}

// optionDashes returns "-" for a one-letter flag and "--" for a longer one.
func optionDashes(name string) string {
	if len(name) == 1 {
		return "-"
	}
	return "--"
}
