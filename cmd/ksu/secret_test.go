package main

import "testing"

func TestWithInitOnFree(t *testing.T) {
	for _, tt := range []struct {
		name, running, extra, want string
	}{
		{"added", "root=/dev/vda ro", "", "init_on_free=1"},
		{"added after extra", "root=/dev/vda", "quiet", "quiet init_on_free=1"},
		{"running sets it", "root=/dev/vda init_on_free=0", "quiet", "quiet"},
		{"extra sets it", "root=/dev/vda", "init_on_free=0", "init_on_free=0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := withInitOnFree(tt.running, tt.extra); got != tt.want {
				t.Errorf("withInitOnFree(%q, %q) = %q, want %q", tt.running, tt.extra, got, tt.want)
			}
		})
	}
}
