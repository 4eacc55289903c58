// Package base builds the ksu-init base initramfs at build time, with
// u-root's image builder (github.com/u-root/mkuimage/uimage): a newc
// archive holding a static ksu-init at /bin/ksu-init, /init linked to it,
// /dev/console, and the empty directories ksu-init mounts on.
//
// It needs the Go toolchain and the ksu source tree, so it runs only where
// images are built, never on the machine being updated. It is a package of
// its own so that ksu and ksu-init do not link the image builder.
package base

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/klog"
	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/mkuimage/uimage/builder"
	"github.com/u-root/uio/llog"
)

// InitPackage is the ksu-init command, relative to the source tree.
const InitPackage = "cmd/ksu-init"

// Options configure Build.
type Options struct {
	// SourceDir is the root of the ksu source tree, the directory with
	// its go.mod.
	SourceDir string
	// Output is the path of the archive to write.
	Output string
	// GOARCH is the target architecture; empty means the host's.
	GOARCH string
	// TempDir holds the build products; empty means a new directory in
	// os.TempDir, removed afterwards.
	TempDir string
}

// records are the archive entries besides ksu-init. The kernel opens
// /dev/console for init's standard files before init runs, so it must be
// in the archive. The directories are the mount points of ksu-init's early
// setup and of the root, and the parents of the module and snapshot files.
func records() []cpio.Record {
	dirs := []string{"dev", "proc", "sys", "run", "tmp", "lib", "lib/modules",
		strings.TrimPrefix(initramfs.NewRootDir, "/"),
		strings.TrimPrefix(initramfs.SnapshotDir, "/"),
	}
	var recs []cpio.Record
	for _, d := range dirs {
		mode := uint64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		recs = append(recs, cpio.Directory(d, mode))
	}
	return append(recs, cpio.CharDev("dev/console", 0o600, 5, 1))
}

// Build compiles ksu-init with CGO_ENABLED=0 and writes the base archive
// to opts.Output, then checks the result with Verify.
func Build(logger klog.Logger, opts Options) error {
	if opts.Output == "" {
		return errors.New("build base initramfs: no output path")
	}
	src, err := filepath.Abs(opts.SourceDir)
	if err != nil {
		return fmt.Errorf("build base initramfs: %w", err)
	}
	if _, err := os.Stat(filepath.Join(src, InitPackage)); err != nil {
		return fmt.Errorf("build base initramfs: %s is not the ksu source tree: %w", src, err)
	}
	tmp := opts.TempDir
	if tmp == "" {
		if tmp, err = os.MkdirTemp("", "ksu-base-"); err != nil {
			return fmt.Errorf("build base initramfs: %w", err)
		}
		defer os.RemoveAll(tmp)
	}
	if err := create(logger, src, tmp, opts); err != nil {
		return fmt.Errorf("build base initramfs %s: %w", opts.Output, err)
	}
	if err := fixRootMode(opts.Output); err != nil {
		return fmt.Errorf("build base initramfs %s: %w", opts.Output, err)
	}
	f, err := os.Open(opts.Output)
	if err != nil {
		return fmt.Errorf("verify base initramfs: %w", err)
	}
	defer f.Close()
	return Verify(f)
}

// create runs the u-root image builder.
func create(logger klog.Logger, src, tmp string, opts Options) error {
	env := golang.Default(
		golang.DisableCGO(),
		golang.WithGOOS("linux"),
		golang.WithGOARCH(opts.GOARCH),
		golang.WithWorkingDir(src),
	)
	base, err := cpio.ArchiveFromRecords(records())
	if err != nil {
		return err
	}
	return uimage.Create(llog.New(slog.LevelInfo, logger.Printf),
		uimage.WithReplaceEnv(env),
		uimage.WithBaseArchive(base),
		uimage.WithCommands(&golang.BuildOpts{}, builder.Binary, filepath.Join(src, InitPackage)),
		uimage.WithInit(filepath.Base(InitPackage)),
		// The archive takes no files from the build machine, so there
		// are no shared libraries to collect.
		uimage.WithSkipLDD(),
		uimage.WithTempDir(tmp),
		uimage.WithCPIOOutput(opts.Output),
	)
}

// fixRootMode rewrites the archive at path so that its "." entry, which
// the image builder copies from its private 0700 build directory, has mode
// 0755. The kernel applies that entry's mode to the initramfs root, and
// processes that are not root must be able to look up paths in it.
func fixRootMode(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := cpio.Newc.Writer(f)
	for _, r := range recs {
		if r.Name == "." {
			r.Mode = cpio.S_IFDIR | 0o755
		}
		if err := w.WriteRecord(r); err != nil {
			f.Close()
			return fmt.Errorf("write archive entry %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		f.Close()
		return fmt.Errorf("write archive trailer: %w", err)
	}
	return f.Close()
}

// Verify checks that r is a base archive that can boot: /init leads to a
// statically linked ELF executable, and /dev/console is there.
func Verify(r io.ReaderAt) error {
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(r))
	if err != nil {
		return fmt.Errorf("verify base initramfs: %w", err)
	}
	byName := make(map[string]cpio.Record)
	for _, rec := range recs {
		byName[rec.Name] = rec
	}
	if c, ok := byName["dev/console"]; !ok || c.Mode&cpio.S_IFMT != cpio.S_IFCHR {
		return errors.New("verify base initramfs: no /dev/console character device")
	}
	initPath, err := resolveInit(byName)
	if err != nil {
		return fmt.Errorf("verify base initramfs: %w", err)
	}
	bin := byName[initPath]
	return checkStatic(io.NewSectionReader(bin, 0, int64(bin.FileSize)), initPath)
}

// resolveInit follows "init" through relative symlinks to a regular file.
func resolveInit(byName map[string]cpio.Record) (string, error) {
	name := "init"
	for range 8 {
		rec, ok := byName[name]
		if !ok {
			return "", fmt.Errorf("/%s not found", name)
		}
		switch rec.Mode & cpio.S_IFMT {
		case cpio.S_IFREG:
			return name, nil
		case cpio.S_IFLNK:
			target, err := io.ReadAll(io.NewSectionReader(rec, 0, int64(rec.FileSize)))
			if err != nil {
				return "", fmt.Errorf("read symlink /%s: %w", name, err)
			}
			if filepath.IsAbs(string(target)) {
				name = strings.TrimPrefix(filepath.Clean(string(target)), "/")
			} else {
				name = filepath.Join(filepath.Dir(name), string(target))
			}
		default:
			return "", fmt.Errorf("/%s is neither a file nor a symlink (mode %#o)", name, rec.Mode)
		}
	}
	return "", errors.New("/init: too many levels of symbolic links")
}

// checkStatic checks that r is an ELF executable with no program
// interpreter, which a dynamically linked binary would need.
func checkStatic(r io.ReaderAt, name string) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("verify base initramfs: /%s is not an ELF executable: %w", name, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("verify base initramfs: /%s is dynamically linked; build it with CGO_ENABLED=0", name)
		}
	}
	return nil
}
