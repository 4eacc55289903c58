package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// exitHelp documents the exit status of every command, in "ksu help"
// and in the man page.
const exitHelp = `Exit status:
  0  success; for check, the update would proceed
  1  the command failed, or check found that the update would not proceed
  2  invalid usage: an unknown command, flag or argument, or update
     without --yes when not on a terminal
`

// manCommands is the order of the commands in the man page.
var manCommands = []string{"check", "update", "status", "dump", "restore"}

// manFiles are the FILES of the man page: path, then what it is.
var manFiles = [][2]string{
	{defaultConfig, "the config file with the default selection and kernel parameters"},
	{"/usr/lib/ksu/ksu-init.cpio", "the base initramfs with ksu-init, the new kernel's PID 1"},
	{"/run/ksu/lock", "held by the running ksu update"},
	{"/run/ksu/report.json", "the report ksu-init writes on the new kernel; /run is emptied at the next boot"},
	{"/var/log/ksu/report-TIME.json", "the copies of the reports that ksu status keeps across boots"},
}

const manDescription = `ksu moves a running Linux machine onto a new kernel with kexec and keeps
the selected processes: it freezes them, writes a snapshot of their
state into the new kernel's initramfs, and ksu-init, the new kernel's
first process, recreates them with the same PIDs before it starts the
real init. Until the kexec, a failure changes nothing and the frozen
processes resume.
`

// writeMan writes the man page of ksu in roff (man(7) macros), built from
// the same help text that "ksu help" and "ksu COMMAND --help" print.
func writeMan(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(".TH KSU 8 \"\" \"ksu\" \"System Administration\"\n")
	// No hyphenation: a hyphen added inside an option or a path would
	// read as part of it.
	b.WriteString(".nh\n")
	b.WriteString(".SH NAME\nksu \\- update the kernel of a running machine and keep its processes\n")
	b.WriteString(".SH SYNOPSIS\n")
	for _, name := range manCommands {
		synopsis, _, _ := commandHelp(name)
		fmt.Fprintf(&b, ".PP\n.B ksu %s\n%s\n", name, roffEscape(synopsis))
	}
	b.WriteString(".SH DESCRIPTION\n")
	roffText(&b, manDescription)
	roffText(&b, selectionHelp)
	b.WriteString(".SH COMMANDS\n")
	for _, name := range manCommands {
		writeManCommand(&b, name)
	}
	b.WriteString(".SH CONFIG FILE\n")
	roffText(&b, configHelp)
	b.WriteString(".SH EXIT STATUS\n")
	writeManExit(&b)
	b.WriteString(".SH FILES\n")
	for _, f := range manFiles {
		fmt.Fprintf(&b, ".TP\n.I %s\n%s\n", f[0], roffEscape(f[1]))
	}
	b.WriteString(".SH SEE ALSO\n.BR kexec (8),\n.BR journalctl (1),\n.BR systemd.unit (5)\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeManCommand writes the subsection of one command: its description
// without the selection and config file texts, which have sections of
// their own, then its flags.
func writeManCommand(b *bytes.Buffer, name string) {
	_, description, fs := commandHelp(name)
	description = strings.ReplaceAll(description, selectionHelp, "")
	description = strings.ReplaceAll(description, configHelp, "")
	fmt.Fprintf(b, ".SS %s\n", name)
	roffText(b, description)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := optionSpec(f)
		flagPart, arg, hasArg := strings.Cut(name, " ")
		if hasArg {
			fmt.Fprintf(b, ".TP\n.BI \"%s \" %s\n", flagName(flagPart), arg)
		} else {
			fmt.Fprintf(b, ".TP\n.B %s\n", flagName(flagPart))
		}
		b.WriteString(roffEscape(usage) + "\n")
	})
}

// writeManExit writes exitHelp's list as tagged paragraphs.
func writeManExit(b *bytes.Buffer) {
	for _, line := range strings.Split(exitHelp, "\n")[1:] {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case len(fields[0]) == 1 && fields[0] >= "0" && fields[0] <= "9":
			fmt.Fprintf(b, ".TP\n.B %s\n%s\n", fields[0], roffEscape(strings.Join(fields[1:], " ")))
		default:
			b.WriteString(roffEscape(strings.Join(fields, " ")) + "\n")
		}
	}
}

// commandHelp returns the synopsis of command name (the "usage:" lines,
// joined), the rest of its help text up to "Options:", and its flag set.
func commandHelp(name string) (synopsis, description string, fs *flag.FlagSet) {
	fs = flag.NewFlagSet("ksu "+name, flag.ContinueOnError)
	commands[name].flags(fs)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage()
	text, _, _ := strings.Cut(out.String(), "\nOptions:\n")
	head, description, _ := strings.Cut(text, "\n\n")
	head = strings.TrimPrefix(head, "usage: ksu "+name)
	return strings.Join(strings.Fields(head), " "), description, fs
}

// roffText writes text as paragraphs: filled text, except that runs of
// indented lines keep their layout in an indented no-fill block.
func roffText(b *bytes.Buffer, text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		b.WriteString(".PP\n")
		inBlock := false
		for _, line := range strings.Split(para, "\n") {
			indented := strings.HasPrefix(line, " ")
			if indented != inBlock {
				if indented {
					b.WriteString(".RS\n.nf\n")
				} else {
					b.WriteString(".fi\n.RE\n")
				}
				inBlock = indented
			}
			b.WriteString(roffEscape(strings.TrimSpace(line)) + "\n")
		}
		if inBlock {
			b.WriteString(".fi\n.RE\n")
		}
	}
}

// optionDash matches a hyphen that starts an option or a range, which
// roff must print as a minus sign (\-), not as a hyphen.
var optionDash = regexp.MustCompile(`(^|[\s(\[|"=])-+`)

// roffEscape escapes s for a text line of roff: backslashes, the dashes
// of options, and a leading period or apostrophe, which would make the
// line a request.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = optionDash.ReplaceAllStringFunc(s, func(m string) string {
		dashes := strings.TrimLeft(m, "\t\n ([|\"=")
		return m[:len(m)-len(dashes)] + strings.Repeat(`\-`, len(dashes))
	})
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// flagName escapes a flag's name for roff, where every dash of an option
// is a minus sign.
func flagName(name string) string {
	return strings.ReplaceAll(name, "-", `\-`)
}
