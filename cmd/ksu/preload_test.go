package main

import "testing"

func TestKexecPolicy(t *testing.T) {
	for _, tt := range []struct {
		policy       kexecPolicy
		enforced     bool
		mayEnforce   bool
		wantAsString string
	}{
		{kexecPolicy{"none", "n"}, false, false, "no kexec signature enforcement"},
		{kexecPolicy{"integrity", "n"}, true, true, "lockdown integrity"},
		{kexecPolicy{"confidentiality", "n"}, true, true, "lockdown confidentiality"},
		{kexecPolicy{"none", "y"}, true, true, "KEXEC_SIG_FORCE y"},
		{kexecPolicy{"integrity", "y"}, true, true, "lockdown integrity, KEXEC_SIG_FORCE y"},
		{kexecPolicy{"unknown", "n"}, false, true, "lockdown unknown"},
		{kexecPolicy{"none", "unknown"}, false, true, "KEXEC_SIG_FORCE unknown"},
	} {
		if got := tt.policy.enforced(); got != tt.enforced {
			t.Errorf("%+v.enforced() = %v, want %v", tt.policy, got, tt.enforced)
		}
		if got := tt.policy.mayEnforce(); got != tt.mayEnforce {
			t.Errorf("%+v.mayEnforce() = %v, want %v", tt.policy, got, tt.mayEnforce)
		}
		if got := tt.policy.String(); got != tt.wantAsString {
			t.Errorf("%+v.String() = %q, want %q", tt.policy, got, tt.wantAsString)
		}
	}
}
