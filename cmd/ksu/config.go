package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// defaultConfig is the config file read when --config is not given.
const defaultConfig = "/etc/ksu/ksu.conf"

// configHelp documents the config file in the help of check and update.
const configHelp = `Config file (--config, default ` + defaultConfig + `, may be missing):
one "key = value" per line; blank lines and lines starting with # are
ignored, and " #" starts a comment at the end of a line. The keys pid,
cgroup, unit and exclude take values separated by blanks and may be
repeated; all takes yes or no; append takes the rest of the line, and
repeated append lines are joined with a space. Command-line flags
override the file: any of --pid, --cgroup, --unit or --all replaces its
whole selection, --exclude replaces exclude (which only --all uses) and
--append replaces append. Example:
    unit = nginx redis-server   # every process of both services
    append = quiet
`

// config is the content of the config file.
type config struct {
	sel        selection
	appendArgs string
}

// commonFlags are the flags that check and update share beside the
// selection.
type commonFlags struct {
	config  string
	verbose bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", defaultConfig, "the config file with the default selection and append")
	fs.BoolVar(&c.verbose, "verbose", false, "trace each step on stderr: the selection, checks, freeze, dump, sizes and times")
}

// apply reads the config file and fills in what the command line left
// out: the selection of sel unless a selection flag was given, exclude
// for --all unless --exclude was given, and appendArgs unless --append
// was given.
// appendArgs may be nil for a command without --append.
func (c *commonFlags) apply(fs *flag.FlagSet, sel *selection, appendArgs *string) error {
	enableTrace(c.verbose)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg, err := loadConfig(c.config, set["config"])
	if err != nil {
		return err
	}
	if !anySet(set, selectionFlags) {
		sel.pids, sel.cgroups, sel.units, sel.all = cfg.sel.pids, cfg.sel.cgroups, cfg.sel.units, cfg.sel.all
	}
	// The file's exclude belongs to its "all"; it also applies to --all
	// on the command line, never to another selection.
	if !set["exclude"] && sel.all {
		sel.excludes = cfg.sel.excludes
	}
	if appendArgs != nil && !set["append"] {
		*appendArgs = cfg.appendArgs
	}
	return sel.validate()
}

func anySet(set map[string]bool, names []string) bool {
	for _, name := range names {
		if set[name] {
			return true
		}
	}
	return false
}

// loadConfig reads the config file at path. A missing file is an empty
// config unless the operator named it (explicit).
func loadConfig(path string, explicit bool) (config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		trace.Printf("config: %s does not exist, using the command line only", path)
		return config{}, nil
	}
	if err != nil {
		return config{}, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	cfg, err := parseConfig(f, path)
	if err == nil {
		trace.Printf("config: read %s", path)
	}
	return cfg, err
}

// maxConfigLines bounds the config file.
const maxConfigLines = 10000

// parseConfig parses a config file; path names it in errors.
func parseConfig(r io.Reader, path string) (config, error) {
	var cfg config
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if n > maxConfigLines {
			return cfg, fmt.Errorf("%s: more than %d lines", path, maxConfigLines)
		}
		line := stripComment(sc.Text())
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return cfg, fmt.Errorf("%s:%d: invalid line %q: want key = value", path, n, line)
		}
		if value == "" {
			return cfg, fmt.Errorf("%s:%d: key %s: missing value", path, n, key)
		}
		if err := cfg.set(key, value); err != nil {
			return cfg, fmt.Errorf("%s:%d: key %s: %w", path, n, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return cfg, fmt.Errorf("read %s: %w", path, err)
	}
	return cfg, nil
}

// stripComment removes a comment, which starts with a # at the start of
// the line or after a blank, and the blanks around what remains.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || isBlank(line[i-1])) {
			line = line[:i]
			break
		}
	}
	return strings.TrimSpace(line)
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (c *config) set(key, value string) error {
	switch key {
	case "pid":
		for _, f := range strings.Fields(value) {
			if err := c.sel.pids.Set(f); err != nil {
				return err
			}
		}
	case "cgroup":
		c.sel.cgroups = append(c.sel.cgroups, strings.Fields(value)...)
	case "unit":
		c.sel.units = append(c.sel.units, strings.Fields(value)...)
	case "exclude":
		c.sel.excludes = append(c.sel.excludes, strings.Fields(value)...)
	case "all":
		all, err := parseYesNo(value)
		if err != nil {
			return err
		}
		c.sel.all = all
	case "append":
		c.appendArgs = strings.TrimSpace(c.appendArgs + " " + value)
	default:
		return errors.New("unknown key: want pid, cgroup, unit, all, exclude or append")
	}
	return nil
}

func parseYesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("invalid value %q: want yes or no", s)
}
