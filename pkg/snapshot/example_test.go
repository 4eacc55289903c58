package snapshot_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// Example dumps a process with one page of memory and restores it: the
// page streams from a reader into the snapshot and from the snapshot
// into its place in the target memory.
func Example() {
	var file bytes.Buffer
	if err := dump(&file); err != nil {
		fmt.Println("dump:", err)
		return
	}
	memory := make([]byte, 3*4096) // the target process's memory, from 0x10000
	if err := restore(&file, memory); err != nil {
		fmt.Println("restore:", err)
		return
	}
	fmt.Printf("%q\n", memory[4096:4104])
	// Output:
	// meta: 6.1.0-50-cloud-amd64, pages of 4096 bytes
	// process 42 with 1 thread(s)
	// pages of pid 42: 1 range(s), 4096 bytes
	// "ksu!ksu!"
}

func dump(dst io.Writer) error {
	w, err := snapshot.NewWriter(dst, snapshot.WriterOptions{})
	if err != nil {
		return err
	}
	if err := w.WriteMeta(&snapshot.Meta{KernelRelease: "6.1.0-50-cloud-amd64", PageSize: 4096}); err != nil {
		return err
	}
	if err := w.WriteProcess(&snapshot.Process{PID: 42, Threads: []snapshot.Thread{{TID: 42}}}); err != nil {
		return err
	}
	page := bytes.Repeat([]byte("ksu!"), 1024)
	pages := &snapshot.Pages{PID: 42, Ranges: []snapshot.PageRange{{Addr: 0x11000, Len: 4096}}}
	if err := w.WritePages(pages, bytes.NewReader(page)); err != nil {
		return err
	}
	return w.Close()
}

func restore(src io.Reader, memory []byte) error {
	r, err := snapshot.NewReader(src, snapshot.ReaderOptions{})
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Printf("meta: %s, pages of %d bytes\n", r.Meta().KernelRelease, r.Meta().PageSize)
	for {
		s, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch s.Type {
		case snapshot.SectionProcess:
			p, err := s.Process()
			if err != nil {
				return err
			}
			fmt.Printf("process %d with %d thread(s)\n", p.PID, len(p.Threads))
		case snapshot.SectionPages:
			pages := s.Pages()
			fmt.Printf("pages of pid %d: %d range(s), %d bytes\n", pages.PID, len(pages.Ranges), pages.Size())
			for _, pr := range pages.Ranges {
				off := pr.Addr - 0x10000
				if _, err := io.ReadFull(s, memory[off:off+pr.Len]); err != nil {
					return err
				}
			}
		}
	}
}
