package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ksu-project/ksu/pkg/klog"
)

// wipeSnapshot overwrites every regular file in dir, the snapshot
// archive that the kernel unpacked into the initramfs, with zeros and
// then removes the files and dir. The archive holds the memory of the
// preserved processes, and the initramfs's rootfs would otherwise keep
// it until the handoff frees the initramfs. Failures are logged, not
// returned: the boot goes on either way.
func wipeSnapshot(log klog.Logger, dir string) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		log.Printf("wipe snapshot: %v", err)
		return
	}
	var zeroed int64
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if e.Type().IsRegular() {
			n, err := zeroFile(path)
			zeroed += n
			if err != nil {
				log.Printf("wipe snapshot: %v", err)
			}
		}
		if err := os.Remove(path); err != nil {
			log.Printf("wipe snapshot: %v", err)
		}
	}
	if err := os.Remove(dir); err != nil {
		log.Printf("wipe snapshot: %v", err)
	}
	log.Printf("wiped the snapshot in %s: %d files, %d bytes overwritten with zeros", dir, len(entries), zeroed)
}

// zeroFile overwrites the contents of the file at path with zeros in
// place, keeping its size, and returns how many bytes it wrote. On
// rootfs (ramfs or tmpfs) the writes land in the very pages that hold
// the data.
func zeroFile(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s to zero it: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("zero %s: %w", path, err)
	}
	zeros := make([]byte, 1<<20)
	var off int64
	for off < st.Size() {
		n := min(int64(len(zeros)), st.Size()-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return off, fmt.Errorf("zero %s at offset %d: %w", path, off, err)
		}
		off += n
	}
	return off, nil
}
