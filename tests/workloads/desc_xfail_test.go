package workloads

import "testing"

func TestXfailOn(t *testing.T) {
	d := Desc{Xfail: "everywhere", XfailKernels: map[string]string{"6.1": "only on 6.1"}}
	for _, tt := range []struct{ rel, want string }{
		{"6.1.0-50-cloud-amd64", "only on 6.1"},
		{"6.12.117+deb12-cloud-amd64", "everywhere"},
		{"6.18.44", "everywhere"},
		{"garbage", "everywhere"},
	} {
		if got := d.XfailOn(tt.rel); got != tt.want {
			t.Errorf("XfailOn(%q) = %q, want %q", tt.rel, got, tt.want)
		}
	}
	if got := (Desc{XfailKernels: map[string]string{"6.1": "x"}}).XfailOn("6.12.1"); got != "" {
		t.Errorf("XfailOn(6.12.1) with only a 6.1 reason = %q, want \"\"", got)
	}
}

func TestParseDescRejectsBadXfailKernel(t *testing.T) {
	_, err := parseDesc("x.desc", []byte(`{"min_kernel": "6.1", "xfail_kernels": {"six": "r"}}`))
	if err == nil {
		t.Errorf("parseDesc(xfail_kernels key \"six\") = nil error, want an error")
	}
}
