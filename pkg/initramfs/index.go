package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Module is one loadable kernel module file.
type Module struct {
	// Name is the module name the kernel uses, with '_' for '-'
	// (virtio_blk).
	Name string
	// Path is the file's path relative to the modules directory, as in
	// modules.dep (kernel/drivers/block/virtio_blk.ko.xz).
	Path string
	// Source is the file's path on this machine.
	Source string
}

// Index is the module index of one kernel release, read from the files
// that depmod writes in /lib/modules/RELEASE.
type Index struct {
	dir            string
	paths          map[string]string   // module name -> path from modules.dep
	deps           map[string][]string // module name -> names of its dependencies
	aliases        []alias             // modules.alias
	builtin        map[string]bool     // modules.builtin
	builtinAliases []alias             // modules.builtin.modinfo
	softdeps       map[string]softdep  // modules.softdep
}

type alias struct {
	pattern string
	module  string
}

// softdep lists the names or aliases that modprobe loads before (pre) and
// after (post) a module.
type softdep struct {
	pre, post []string
}

// LoadIndex reads the module index in dir, a /lib/modules/RELEASE
// directory. modules.dep is required; modules.alias, modules.builtin,
// modules.builtin.modinfo and modules.softdep are read when present.
// Debian's kernel packages ship no modules.dep: run depmod (depmod -b ROOT
// RELEASE for an unpacked package) first.
func LoadIndex(dir string) (*Index, error) {
	ix := &Index{
		dir:      dir,
		paths:    make(map[string]string),
		deps:     make(map[string][]string),
		builtin:  make(map[string]bool),
		softdeps: make(map[string]softdep),
	}
	if err := ix.readFile("modules.dep", true, ix.parseDep); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name  string
		parse func(io.Reader) error
	}{
		{"modules.alias", ix.parseAlias},
		{"modules.builtin", ix.parseBuiltin},
		{"modules.builtin.modinfo", ix.parseBuiltinModinfo},
		{"modules.softdep", ix.parseSoftdep},
	} {
		if err := ix.readFile(f.name, false, f.parse); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// readFile opens dir/name and parses it. A missing optional file is not an
// error.
func (ix *Index) readFile(name string, required bool, parse func(io.Reader) error) error {
	p := filepath.Join(ix.dir, name)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read module index: %w (run depmod for this kernel first)", err)
		}
		return fmt.Errorf("read module index: %w", err)
	}
	defer f.Close()
	if err := parse(f); err != nil {
		return fmt.Errorf("parse %s: %w", p, err)
	}
	return nil
}

// parseDep reads modules.dep lines, "path: dependency-path ...".
func (ix *Index) parseDep(r io.Reader) error {
	return eachLine(r, func(n int, line string) error {
		modPath, depList, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %d: missing ':' in %q", n, line)
		}
		name := ModuleName(modPath)
		ix.paths[name] = modPath
		var deps []string
		for _, d := range strings.Fields(depList) {
			deps = append(deps, ModuleName(d))
		}
		ix.deps[name] = deps
		return nil
	})
}

// parseAlias reads modules.alias lines, "alias PATTERN MODULE".
func (ix *Index) parseAlias(r io.Reader) error {
	return eachLine(r, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("line %d: want \"alias PATTERN MODULE\", got %q", n, line)
		}
		ix.aliases = append(ix.aliases, alias{pattern: f[1], module: ModuleName(f[2])})
		return nil
	})
}

// parseBuiltin reads modules.builtin, one module path per line.
func (ix *Index) parseBuiltin(r io.Reader) error {
	return eachLine(r, func(_ int, line string) error {
		ix.builtin[ModuleName(line)] = true
		return nil
	})
}

// parseBuiltinModinfo reads the aliases of built-in modules from
// modules.builtin.modinfo, a sequence of NUL-terminated "module.key=value"
// strings.
func (ix *Index) parseBuiltinModinfo(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, entry := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(entry), "=")
		mod, field, dotted := strings.Cut(key, ".")
		if !ok || !dotted || field != "alias" {
			continue
		}
		name := ModuleName(mod)
		ix.builtin[name] = true
		ix.builtinAliases = append(ix.builtinAliases, alias{pattern: value, module: name})
	}
	return nil
}

// parseSoftdep reads modules.softdep lines, "softdep MODULE pre: A B post:
// C". Words before any "pre:" or "post:" are ignored, as kmod does.
func (ix *Index) parseSoftdep(r io.Reader) error {
	return eachLine(r, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("line %d: want \"softdep MODULE ...\", got %q", n, line)
		}
		name := ModuleName(f[1])
		sd := ix.softdeps[name]
		var list *[]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				list = &sd.pre
			case "post:":
				list = &sd.post
			default:
				if list != nil {
					*list = append(*list, w)
				}
			}
		}
		ix.softdeps[name] = sd
		return nil
	})
}

// eachLine calls fn for every line of r that is neither blank nor a '#'
// comment, with its 1-based line number and surrounding space removed.
func eachLine(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ModuleName returns the kernel's name for a module given as a name or a
// file path: the base name without ".ko" and a compression suffix, with
// '-' replaced by '_' (kernel/fs/fuse/cuse.ko.xz and cuse are both
// "cuse").
func ModuleName(nameOrPath string) string {
	name := path.Base(nameOrPath)
	for _, suffix := range compressionSuffixes {
		name = strings.TrimSuffix(name, suffix)
	}
	name = strings.TrimSuffix(name, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}
