package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"golang.org/x/sys/unix"
)

// setupStep is one step of the early setup. String returns the shell
// command that does the same, so that the log reads like a script.
type setupStep interface {
	apply() error
	String() string
}

// earlySteps prepare the initramfs before anything else runs: device
// nodes, /proc, /sys, /run and the directory where the root is mounted.
var earlySteps = []setupStep{
	mkdirStep{"/dev", 0o755},
	mountStep{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	mkdirStep{"/proc", 0o555},
	mountStep{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	mkdirStep{"/sys", 0o555},
	mountStep{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	mkdirStep{"/run", 0o755},
	mountStep{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	symlinkStep{"/proc/self/fd", "/dev/fd"},
	mkdirStep{initramfs.NewRootDir, 0o755},
}

// mkdirStep creates a directory and its parents; an existing one is fine.
type mkdirStep struct {
	path string
	mode os.FileMode
}

func (s mkdirStep) apply() error {
	if err := os.MkdirAll(s.path, s.mode); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return nil
}

func (s mkdirStep) String() string {
	return fmt.Sprintf("mkdir -p -m %04o %s", s.mode.Perm(), s.path)
}

// mountStep mounts a filesystem.
type mountStep struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (s mountStep) apply() error {
	if err := unix.Mount(s.source, s.target, s.fstype, s.flags, s.data); err != nil {
		return &os.PathError{Op: "mount " + s.fstype, Path: s.target, Err: err}
	}
	return nil
}

func (s mountStep) String() string {
	opts := mountFlagNames(s.flags)
	if s.data != "" {
		opts = append(opts, s.data)
	}
	cmd := "mount -t " + s.fstype
	if len(opts) > 0 {
		cmd += " -o " + strings.Join(opts, ",")
	}
	return cmd + " " + s.source + " " + s.target
}

// mountFlagNames returns the mount(8) option names of flags.
func mountFlagNames(flags uintptr) []string {
	var names []string
	for _, f := range []struct {
		flag uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"},
		{unix.MS_NOSUID, "nosuid"},
		{unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"},
		{unix.MS_NOATIME, "noatime"},
		{unix.MS_RELATIME, "relatime"},
	} {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return names
}

// symlinkStep creates a symbolic link; an existing one is fine.
type symlinkStep struct {
	target, link string
}

func (s symlinkStep) apply() error {
	err := os.Symlink(s.target, s.link)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}
	return nil
}

func (s symlinkStep) String() string {
	return "ln -s " + s.target + " " + s.link
}
