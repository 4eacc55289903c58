package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// checkOptions are the flags of "ksu check".
type checkOptions struct {
	kernel     string
	base       string
	modulesDir string
	sel        selection
	common     commonFlags
	pids       pidList   // roots of the trees that sel selected
	skipped    []skipped // what --all left out
	json       bool
}

// checkReport is the outcome of "ksu check", printed as text or JSON.
type checkReport struct {
	// Proceed is whether "ksu update" with the same options would go on
	// past its own checks.
	Proceed bool        `json:"proceed"`
	Trees   []treeCheck `json:"trees"`
	// Skipped lists what --all left out, and why.
	Skipped []skipped    `json:"skipped,omitempty"`
	Kernel  *kernelCheck `json:"kernel,omitempty"`
	Memory  *memoryCheck `json:"memory,omitempty"`
}

func checkFlags(fs *flag.FlagSet) func([]string) error {
	var o checkOptions
	var latest bool
	fs.StringVar(&o.kernel, "kernel", "", "the new kernel's bzImage to check, e.g. /boot/vmlinuz-RELEASE")
	fs.BoolVar(&latest, "latest", false, "check the newest kernel in /boot, if it is newer than the running one")
	fs.StringVar(&o.base, "base", "/usr/lib/ksu/ksu-init.cpio", "the ksu-init base initramfs")
	fs.StringVar(&o.modulesDir, "modules-dir", "/lib/modules",
		"where the new kernel's modules are installed, one directory per release")
	o.sel.register(fs, "check")
	o.common.register(fs)
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ksu check [--kernel VMLINUZ | --latest] [--pid PID... | --cgroup PATH... |
                 --unit NAME... | --all [--exclude COMM...]] [--json] [--verbose]

Check, without changing anything, whether "ksu update" with the same
--kernel and selection could run: which process trees can be preserved
and which objects block the others, how much memory the snapshot needs,
whether the new kernel can be loaded and whether the bootloader starts
it by default. Under lockdown or CONFIG_KEXEC_SIG_FORCE, it reads the
kernel image's Authenticode signature and looks up the signer's keys in
/proc/keys; it never loads the kernel.

`+selectionHelp+`
`+configHelp+`

Exit status: 0 when the update would proceed, 1 when it would not, 2 for
invalid usage.

Options:
`)
		printOptions(fs)
	}
	return func(args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
		}
		if err := o.common.apply(fs, &o.sel, nil); err != nil {
			return err
		}
		if o.kernel == "" && !latest && o.sel.empty() {
			return fmt.Errorf("%w: give --kernel, --pid or both; --cgroup, --unit and --all select processes too", errUsage)
		}
		kernel, err := kernelFlags(o.kernel, latest)
		if err != nil {
			return err
		}
		o.kernel = kernel
		if !o.sel.empty() {
			sel, err := localHost().resolve(o.sel)
			if err != nil {
				return err
			}
			o.pids, o.skipped = sel.Roots, sel.Skipped
		}
		rep := runCheck(o)
		if err := printCheck(os.Stdout, rep, o.json); err != nil {
			return err
		}
		if !rep.Proceed {
			return errors.New("the update would not proceed")
		}
		return nil
	}
}

// runCheck runs every check of o. It reads /proc, /sys and /boot only.
func runCheck(o checkOptions) checkReport {
	start := time.Now()
	rep := checkReport{Proceed: true, Trees: checkTreesDetail(o.pids), Skipped: o.skipped}
	for _, t := range rep.Trees {
		rep.Proceed = rep.Proceed && t.Preservable
		trace.Printf("check: tree %d (%s): %s %v, preservable %v, %s blocking",
			t.Root, t.Comm, plural(len(t.PIDs), "process", "processes"), t.PIDs, t.Preservable,
			plural(len(t.Blockers), "object", "objects"))
	}
	trace.Printf("check: %s checked in %s", plural(len(rep.Trees), "tree", "trees"), since(start))
	if o.kernel != "" {
		start := time.Now()
		k := checkKernel(o)
		rep.Kernel = &k
		rep.Proceed = rep.Proceed && k.Loadable
		trace.Printf("check: kernel %s (%s) loadable %v, checked in %s", k.Path, k.Release, k.Loadable, since(start))
	}
	if len(o.pids) > 0 {
		m := checkMemory(procRoot, rep.Trees)
		rep.Memory = &m
		rep.Proceed = rep.Proceed && m.Enough
		trace.Printf("check: memory needed %s, available %s", formatBytes(m.NeededBytes), formatBytes(m.AvailableBytes))
	}
	return rep
}

func printCheck(w io.Writer, rep checkReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	}
	for _, t := range rep.Trees {
		printTree(w, t)
	}
	printSkipped(w, rep.Skipped)
	if rep.Kernel != nil {
		printKernel(w, *rep.Kernel)
	}
	if rep.Memory != nil {
		printMemory(w, *rep.Memory)
	}
	switch {
	case rep.Proceed && rep.Kernel == nil:
		fmt.Fprintln(w, "result: the processes can be preserved; give --kernel or --latest to check the kernel too")
	case rep.Proceed:
		fmt.Fprintln(w, "result: the update would proceed")
	default:
		fmt.Fprintln(w, "result: the update would not proceed")
	}
	return nil
}

func printTree(w io.Writer, t treeCheck) {
	state := "preservable"
	if !t.Preservable {
		state = "NOT preservable"
	}
	fmt.Fprintf(w, "tree %d (%s): %s, %s\n", t.Root, t.Comm, plural(len(t.PIDs), "process", "processes"), state)
	for _, b := range t.Blockers {
		fmt.Fprintf(w, "  process %d: %s (%s): %s\n", b.PID, b.Object, b.Kind, b.Reason)
		if b.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", b.Hint)
		}
	}
	if t.Preservable {
		fmt.Fprintf(w, "  memory: resident %s, anonymous %s, shared and tmpfs files %s; snapshot about %s before compression\n",
			formatBytes(t.RSSBytes), formatBytes(t.AnonBytes), formatBytes(t.SharedBytes), formatBytes(t.SnapshotBytes))
	}
}

// printSkipped lists what --all left out, kernel threads in one line.
func printSkipped(w io.Writer, skips []skipped) {
	kthreads := 0
	for _, s := range skips {
		if s.Reason == reasonKernelThread {
			kthreads++
			continue
		}
		fmt.Fprintf(w, "skipped process %d (%s): %s\n", s.PID, s.Comm, s.Reason)
	}
	if kthreads > 0 {
		fmt.Fprintf(w, "skipped %s\n", plural(kthreads, "kernel thread", "kernel threads"))
	}
}

func printKernel(w io.Writer, k kernelCheck) {
	state := "loadable"
	if !k.Loadable {
		state = "NOT loadable"
	}
	release := k.Release
	if release == "" {
		release = "unknown release"
	}
	fmt.Fprintf(w, "kernel %s (%s): %s\n", k.Path, release, state)
	for _, p := range k.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	fmt.Fprintf(w, "  lockdown: %s; KEXEC_SIG_FORCE: %s\n", k.Lockdown, k.SigForce)
	fmt.Fprintf(w, "  signature: %s\n", k.Signature)
	for _, warn := range k.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	fmt.Fprintf(w, "  bootloader default: %s", k.BootDefault)
	if k.DefaultKernel != "" {
		fmt.Fprintf(w, " (%s)", k.DefaultKernel)
	}
	fmt.Fprintln(w)
}

func printMemory(w io.Writer, m memoryCheck) {
	state := "enough"
	if !m.Enough {
		state = "NOT enough"
	}
	fmt.Fprintf(w, "memory: update needs about %s, %s available: %s\n",
		formatBytes(m.NeededBytes), formatBytes(m.AvailableBytes), state)
	if m.Problem != "" {
		fmt.Fprintf(w, "  problem: %s\n", m.Problem)
	}
}

// formatBytes formats n in binary units with one decimal, e.g. "1.5 GiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// plural formats n with the singular or plural noun, e.g. "1 process".
func plural(n int, singular, pluralForm string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, pluralForm)
}

// sameFile reports whether paths a and b name the same file after
// symbolic links are followed.
func sameFile(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}
