package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSplitCmdline(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  console=ttyS0   root=/dev/vda\n", []string{"console=ttyS0", "root=/dev/vda"}},
		{`rootflags="data=journal,errors=remount-ro" ro`, []string{"rootflags=data=journal,errors=remount-ro", "ro"}},
		{`"LABEL=my root" x`, []string{"LABEL=my root", "x"}},
		{`a="" b`, []string{"a=", "b"}},
		{"a -- b c", []string{"a", "--", "b", "c"}},
	} {
		got := splitCmdline(tt.in)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitCmdline(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	defaults := bootConfig{rootWait: defaultRootWait, onFail: failReboot}
	for _, tt := range []struct {
		name         string
		cmdline      string
		want         bootConfig
		wantWarnings int
	}{
		{"empty", "", defaults, 0},
		{
			"typical",
			"BOOT_IMAGE=/boot/vmlinuz console=ttyS0 root=UUID=0b9c5d5e-7a35-4c43-a7a8-1f0d8e9d6b0c ro quiet",
			bootConfig{root: "UUID=0b9c5d5e-7a35-4c43-a7a8-1f0d8e9d6b0c", readOnly: true, rootWait: defaultRootWait, onFail: failReboot},
			0,
		},
		{"last of ro and rw wins", "ro rw", defaults, 0},
		{
			"all ksu parameters",
			"root=/dev/vda rootfstype=xfs,,ext4 rootflags=noatime init=/lib/systemd/systemd ksu.rootwait=2.5 ksu.onfail=poweroff ksu.debug",
			bootConfig{
				root: "/dev/vda", rootFSType: []string{"xfs", "ext4"}, rootFlags: "noatime",
				init: "/lib/systemd/systemd", rootWait: 2500 * time.Millisecond, onFail: failPoweroff, debug: true,
			},
			0,
		},
		{"zero rootwait", "ksu.rootwait=0", bootConfig{onFail: failReboot}, 0},
		{"invalid rootwait", "ksu.rootwait=soon", defaults, 1},
		{"negative rootwait", "ksu.rootwait=-1", defaults, 1},
		{"invalid onfail", "ksu.onfail=shell", defaults, 1},
		{"init arguments not parsed", "root=/dev/vda -- root=/dev/vdb ro", bootConfig{root: "/dev/vda", rootWait: defaultRootWait, onFail: failReboot}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings := parseCmdline(tt.cmdline)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(bootConfig{})); diff != "" {
				t.Errorf("parseCmdline(%q) mismatch (-want +got):\n%s", tt.cmdline, diff)
			}
			if len(warnings) != tt.wantWarnings {
				t.Errorf("parseCmdline(%q) warnings = %q, want %d", tt.cmdline, warnings, tt.wantWarnings)
			}
		})
	}
}
