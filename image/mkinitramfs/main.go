// Command mkinitramfs builds the parts of the initramfs that ksu-init
// boots from:
//
//	mkinitramfs base -o FILE
//	mkinitramfs modules --modules-dir DIR --release REL [--module NAME ...] [--modalias ALIAS ...] -o FILE
//
// base compiles ksu-init (it needs the Go toolchain and the ksu source
// tree, found from the working directory or --src) and writes the base
// archive. modules writes an archive of the named modules and those that
// match the device modaliases, with their dependencies, decompressed, and
// the load list ksu-init reads; DIR is ROOT/lib/modules/REL and must have
// been indexed by depmod. Module names built into the kernel are skipped;
// an unknown module name is an error. Concatenate the base and modules
// archives to form one initramfs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/initramfs/base"
	"github.com/ksu-project/ksu/pkg/klog"
)

const usage = `usage:
  mkinitramfs base -o FILE [--src DIR] [--goarch ARCH]
  mkinitramfs modules --modules-dir DIR --release REL [--module NAME ...] [--modalias ALIAS ...] -o FILE
`

func main() {
	log := klog.Stderr("mkinitramfs")
	if err := run(log, os.Args[1:]); err != nil {
		log.Printf("%v", err)
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("invalid usage")

func run(log klog.Logger, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "base":
		return runBase(log, args[1:])
	case "modules":
		return runModules(log, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func runBase(log klog.Logger, args []string) error {
	fs := flag.NewFlagSet("base", flag.ContinueOnError)
	out := fs.String("o", "", "write the archive to `FILE`")
	src := fs.String("src", "", "ksu source tree (default: the go.mod directory above the working directory)")
	goarch := fs.String("goarch", "", "target architecture (default: the host's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: base needs -o FILE", errUsage)
	}
	if *src == "" {
		dir, err := findSourceTree()
		if err != nil {
			return err
		}
		*src = dir
	}
	return writeAtomic(*out, func(tmp string) error {
		return base.Build(log, base.Options{SourceDir: *src, Output: tmp, GOARCH: *goarch})
	})
}

func runModules(log klog.Logger, args []string) error {
	fs := flag.NewFlagSet("modules", flag.ContinueOnError)
	out := fs.String("o", "", "write the archive to `FILE`")
	dir := fs.String("modules-dir", "", "the kernel's modules, ROOT/lib/modules/REL, indexed by depmod")
	release := fs.String("release", "", "kernel release, as uname -r prints it on that kernel")
	var names, aliases listFlag
	fs.Var(&names, "module", "a module `NAME` or alias to include, with its dependencies (repeatable)")
	fs.Var(&aliases, "modalias", "a device `MODALIAS`; the modules matching it are included (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || *dir == "" || *release == "" {
		return fmt.Errorf("%w: modules needs --modules-dir, --release and -o", errUsage)
	}

	ix, err := initramfs.LoadIndex(*dir)
	if err != nil {
		return err
	}
	mods, err := ix.Resolve(names, aliases)
	if err != nil {
		return err
	}
	for _, m := range mods {
		log.Printf("module %s (%s)", m.Name, m.Path)
	}

	return writeAtomic(*out, func(tmp string) error {
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if err := initramfs.WriteModulesArchive(f, *release, mods...); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// parseFlags parses args and rejects arguments left after the flags.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %s: %w", errUsage, fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s: unexpected argument %q", errUsage, fs.Name(), fs.Arg(0))
	}
	return nil
}

// listFlag is a flag that may be repeated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// writeAtomic lets write create a temporary file next to path and renames
// it to path on success, so a failed run leaves no partial archive.
func writeAtomic(path string, write func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := write(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// findSourceTree returns the nearest directory at or above the working
// directory whose go.mod declares the ksu module.
func findSourceTree() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/ksu-project/ksu\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("ksu source tree not found above the working directory; pass --src DIR")
}
