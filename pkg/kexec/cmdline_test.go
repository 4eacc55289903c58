package kexec

import "testing"

func TestCmdline(t *testing.T) {
	for _, tt := range []struct {
		name, running, extra, want string
	}{
		{
			"grub parameters dropped",
			"BOOT_IMAGE=/boot/vmlinuz-6.1.0-50-cloud-amd64 root=UUID=abcd ro console=ttyS0 initrd=/initrd.img",
			"",
			"root=UUID=abcd ro console=ttyS0 panic=10",
		},
		{"extra appended", "root=/dev/vda rw", "quiet ksu.debug", "root=/dev/vda rw quiet ksu.debug panic=10"},
		{"panic kept", "root=/dev/vda panic=-1", "", "root=/dev/vda panic=-1"},
		{"panic from extra", "root=/dev/vda", "panic=30", "root=/dev/vda panic=30"},
		{"quoted value kept whole", `root=/dev/vda dyndbg="file x.c +p"`, "", `root=/dev/vda dyndbg="file x.c +p" panic=10`},
		{"trailing newline", "root=/dev/vda\n", "", "root=/dev/vda panic=10"},
		{"earlier hold dropped", "root=/dev/vda ksu.hold=a.service", "", "root=/dev/vda panic=10"},
		{"new hold kept", "root=/dev/vda ksu.hold=a.service", "ksu.hold=b.service", "root=/dev/vda ksu.hold=b.service panic=10"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cmdline(tt.running, tt.extra); got != tt.want {
				t.Errorf("Cmdline(%q, %q) = %q, want %q", tt.running, tt.extra, got, tt.want)
			}
		})
	}
}
