// Package kmod loads the kernel modules that an initramfs carries, in the
// order of its load list, with finit_module(2).
//
// The load list (LoadListName, in /lib/modules/RELEASE) names one module
// file per line, relative to that directory, dependencies first. It is
// written by pkg/initramfs at build or update time, where modules.dep is
// resolved, so the loader needs no module index and no modprobe.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/klog"
	"golang.org/x/sys/unix"
)

// LoadListName is the file name of the load list inside
// /lib/modules/RELEASE.
const LoadListName = "ksu-modules.load"

// ReadLoadList parses a load list: one path per line, in load order. Blank
// lines and lines starting with '#' are skipped. A path must be relative
// and stay inside the modules directory.
func ReadLoadList(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !filepath.IsLocal(line) {
			return nil, fmt.Errorf("read load list line %d: path %q is not inside the modules directory", n, line)
		}
		paths = append(paths, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read load list: %w", err)
	}
	return paths, nil
}

// Insert loads the module file at path with finit_module(2), without
// parameters. The file must not be compressed. A module that is already
// loaded gives an error that matches os.ErrExist.
func Insert(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return fmt.Errorf("finit_module(%s): %w", path, err)
	}
	return nil
}

// Loader loads every module of a load list.
type Loader struct {
	// Log receives one line per module and a summary.
	Log klog.Logger
	// Insert loads one module file. Nil means Insert, the real
	// finit_module; tests replace it.
	Insert func(path string) error
}

// Summary counts the outcome of LoadAll.
type Summary struct {
	Loaded  int      // modules inserted by this call
	Present int      // modules the kernel already had
	Failed  []string // paths of modules that failed; each failure is logged
}

// LoadAll loads the modules listed in dir/LoadListName, in order. A module
// that fails is logged and skipped, so that one broken driver does not stop
// the boot, and a module that depends on it then fails too. The error is
// non-nil only when the list cannot be read, and it matches
// os.ErrNotExist when there is no list.
func (l Loader) LoadAll(dir string) (Summary, error) {
	var sum Summary
	listPath := filepath.Join(dir, LoadListName)
	f, err := os.Open(listPath)
	if err != nil {
		return sum, fmt.Errorf("open load list: %w", err)
	}
	paths, err := ReadLoadList(f)
	f.Close()
	if err != nil {
		return sum, fmt.Errorf("%s: %w", listPath, err)
	}

	insert := l.Insert
	if insert == nil {
		insert = Insert
	}
	logger := l.Log
	if logger == nil {
		logger = klog.Discard
	}
	for _, p := range paths {
		start := time.Now()
		err := insert(filepath.Join(dir, p))
		switch {
		case err == nil:
			sum.Loaded++
			logger.Printf("module %s loaded in %v", p, time.Since(start).Round(time.Microsecond))
		case errors.Is(err, os.ErrExist):
			sum.Present++
			logger.Printf("module %s already loaded", p)
		default:
			sum.Failed = append(sum.Failed, p)
			logger.Printf("module %s failed, continuing without it: %v", p, err)
		}
	}
	return sum, nil
}
