package kexec

import "testing"

func TestDropParams(t *testing.T) {
	for _, tt := range []struct {
		name, cmdline string
		names         []string
		want          string
	}{
		{"failpoint dropped", "root=/dev/vda KSU_FAILPOINT=restore-process-42 ro", []string{"KSU_FAILPOINT"}, "root=/dev/vda ro"},
		{"bare name dropped", "root=/dev/vda KSU_FAILPOINT", []string{"KSU_FAILPOINT"}, "root=/dev/vda"},
		{"prefix of a name kept", "KSU_FAILPOINTS=x root=/dev/vda", []string{"KSU_FAILPOINT"}, "KSU_FAILPOINTS=x root=/dev/vda"},
		{"two names", "a=1 b=2 c=3", []string{"a", "c"}, "b=2"},
		{"quoted value kept whole", `x="KSU_FAILPOINT=1 y" KSU_FAILPOINT=2`, []string{"KSU_FAILPOINT"}, `x="KSU_FAILPOINT=1 y"`},
		{"nothing to drop", "root=/dev/vda", nil, "root=/dev/vda"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := DropParams(tt.cmdline, tt.names...); got != tt.want {
				t.Errorf("DropParams(%q, %q) = %q, want %q", tt.cmdline, tt.names, got, tt.want)
			}
		})
	}
}
