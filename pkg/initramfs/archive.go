package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ksu-project/ksu/pkg/kmod"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// compressionSuffixes are the module file suffixes that WriteModulesArchive
// decompresses, because ksu-init loads modules with plain finit_module.
var compressionSuffixes = []string{".xz", ".zst", ".gz"}

// WriteModulesArchive writes a newc archive with the modules, decompressed,
// at /lib/modules/RELEASE/PATH (PATH as in modules.dep without its
// compression suffix), and the load list kmod.LoadListName there, naming
// the same paths in the order of mods. Pass the modules in load order, as
// Index.Resolve returns them.
func WriteModulesArchive(w io.Writer, release string, mods ...Module) error {
	if release == "" || strings.Contains(release, "/") {
		return fmt.Errorf("write modules archive: invalid kernel release %q", release)
	}
	base := path.Join("lib/modules", release)
	aw := newArchiveWriter(w)
	if err := aw.dir(base); err != nil {
		return err
	}
	var list strings.Builder
	for _, m := range mods {
		rel, err := loadPath(m.Path)
		if err != nil {
			return err
		}
		data, err := readModule(m.Source)
		if err != nil {
			return err
		}
		if err := aw.file(path.Join(base, rel), data, 0o644); err != nil {
			return err
		}
		list.WriteString(rel + "\n")
	}
	if err := aw.file(path.Join(base, kmod.LoadListName), []byte(list.String()), 0o644); err != nil {
		return err
	}
	return aw.close()
}

// loadPath returns where a module with the modules.dep path p goes inside
// the release directory: p without its compression suffix.
func loadPath(p string) (string, error) {
	if !path.IsAbs(p) && path.Clean(p) == p && !strings.HasPrefix(p, "../") {
		for _, suffix := range compressionSuffixes {
			p = strings.TrimSuffix(p, suffix)
		}
		return p, nil
	}
	return "", fmt.Errorf("write modules archive: module path %q is not inside the modules directory", p)
}

// readModule returns the content of the module file at src, decompressed
// according to its suffix, and checks that it is an ELF object.
func readModule(src string) ([]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	defer f.Close()
	r, err := decompressor(src, f)
	if err != nil {
		return nil, fmt.Errorf("decompress module %s: %w", src, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress module %s: %w", src, err)
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return nil, fmt.Errorf("read module %s: not an ELF object after decompression", src)
	}
	return data, nil
}

// decompressor returns a reader of the decompressed content of r, chosen by
// the suffix of name.
func decompressor(name string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".xz"):
		return xz.NewReader(r)
	case strings.HasSuffix(name, ".zst"):
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.HasSuffix(name, ".gz"):
		return gzip.NewReader(r)
	}
	return r, nil
}

// archiveWriter writes newc records, creating each parent directory once
// before the first entry below it, because the kernel's initramfs unpacker
// does not create missing parents.
type archiveWriter struct {
	w    cpio.RecordWriter
	dirs map[string]bool
	ino  uint64
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	return &archiveWriter{w: cpio.Newc.Writer(w), dirs: make(map[string]bool)}
}

// dir writes records for p and each of its parents not written yet.
func (a *archiveWriter) dir(p string) error {
	if p == "." || p == "/" || a.dirs[p] {
		return nil
	}
	if err := a.dir(path.Dir(p)); err != nil {
		return err
	}
	a.dirs[p] = true
	return a.write(cpio.Directory(p, 0o755))
}

// file writes a regular file record and its missing parent directories.
func (a *archiveWriter) file(p string, data []byte, perm uint64) error {
	if err := a.dir(path.Dir(p)); err != nil {
		return err
	}
	return a.write(cpio.StaticRecord(data, cpio.Info{Name: p, Mode: cpio.S_IFREG | perm}))
}

// write gives the record the next inode number and writes it. Distinct
// inode numbers keep tools that detect hard links by inode from merging
// records. The kernel itself only merges records with more than one link.
func (a *archiveWriter) write(r cpio.Record) error {
	a.ino++
	r.Ino = a.ino
	r.NLink = 1
	if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
		r.NLink = 2
	}
	if err := a.w.WriteRecord(r); err != nil {
		return fmt.Errorf("write archive entry %s: %w", r.Name, err)
	}
	return nil
}

func (a *archiveWriter) close() error {
	if err := cpio.WriteTrailer(a.w); err != nil {
		return fmt.Errorf("write archive trailer: %w", err)
	}
	return nil
}

// Concat writes the archives in order to w, which makes one initramfs of
// them. The kernel requires every archive to start at a multiple of 4
// bytes, so zero bytes are added after a part whose length is not one,
// which the kernel skips. Parts may be compressed archives too.
func Concat(w io.Writer, parts ...io.Reader) error {
	for i, p := range parts {
		n, err := io.Copy(w, p)
		if err != nil {
			return fmt.Errorf("concatenate archive %d: %w", i, err)
		}
		if pad := (4 - n%4) % 4; pad != 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return fmt.Errorf("concatenate archive %d: %w", i, err)
			}
		}
	}
	return nil
}
