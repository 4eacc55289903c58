package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEarlyStepsReadLikeShell(t *testing.T) {
	var got []string
	for _, s := range earlySteps {
		got = append(got, s.String())
	}
	want := []string{
		"mkdir -p -m 0755 /dev",
		"mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev",
		"mkdir -p -m 0555 /proc",
		"mount -t proc -o nosuid,nodev,noexec proc /proc",
		"mkdir -p -m 0555 /sys",
		"mount -t sysfs -o nosuid,nodev,noexec sysfs /sys",
		"mkdir -p -m 0755 /run",
		"mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run",
		"ln -s /proc/self/fd /dev/fd",
		"mkdir -p -m 0755 /newroot",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("earlySteps String() mismatch (-want +got):\n%s", diff)
	}
}

func TestMountStepWithoutOptions(t *testing.T) {
	s := mountStep{source: "/dev/vda", target: "/newroot", fstype: "ext4"}
	if got, want := s.String(), "mount -t ext4 /dev/vda /newroot"; got != want {
		t.Errorf("mountStep.String() = %q, want %q", got, want)
	}
}

func TestMkdirAndSymlinkSteps(t *testing.T) {
	dir := t.TempDir()
	steps := []setupStep{
		mkdirStep{filepath.Join(dir, "a/b"), 0o755},
		mkdirStep{filepath.Join(dir, "a/b"), 0o755},
		symlinkStep{"/proc/self/fd", filepath.Join(dir, "fd")},
		symlinkStep{"/proc/self/fd", filepath.Join(dir, "fd")},
	}
	for _, s := range steps {
		if err := s.apply(); err != nil {
			t.Errorf("%v: apply() = %v, want nil error (steps must be repeatable)", s, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "a/b")); err != nil || !fi.IsDir() {
		t.Errorf("after %v: stat = %v, %v, want a directory", steps[0], fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "fd")); err != nil || target != "/proc/self/fd" {
		t.Errorf("after %v: readlink = %q, %v, want /proc/self/fd", steps[2], target, err)
	}
}
