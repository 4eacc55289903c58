package initramfs

import "testing"

func TestGlobMatch(t *testing.T) {
	const virtioBlkPCI = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
	for _, tt := range []struct {
		pattern string
		s       string
		want    bool
	}{
		// Real patterns from Debian 6.1 modules.alias against the modalias
		// of QEMU's virtio-blk-pci device and of a virtio block device.
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", virtioBlkPCI, true},
		{"pci:v00001AF4d00001041sv*sd*bc*sc*i*", virtioBlkPCI, false},
		{"pci:v00008086d*sv*sd*bc01sc06i01*", virtioBlkPCI, false},
		{"pci:v*d*sv*sd*bc01sc00i*", virtioBlkPCI, true},
		{"virtio:d00000002v*", "virtio:d00000002v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0094,00E3", true},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0095", false},
		{"acpi*:PNP0A03:*", "acpi:PNP0A03:", true},
		// Plain names, '?', sets and escapes.
		{"fs-xfs", "fs-xfs", true},
		{"fs-xfs", "fs-xfsx", false},
		{"", "", true},
		{"*", "", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"usb:v*p*d*dc*dsc*dp*ic08isc0[1-6]ip50in*", "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", true},
		{"usb:v*p*d*dc*dsc*dp*ic08isc0[1-6]ip50in*", "usb:v0781p5567d0100dc00dsc00dp00ic08isc07ip50in00", false},
		{"x[!0-9]", "xa", true},
		{"x[!0-9]", "x5", false},
		{"x[^0-9]", "x5", false},
		{"x[]]", "x]", true},
		{"x[", "x[", true},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"of:N*T*Cvendor,model*", "of:NfooT<NULL>Cvendor,model", true},
		{"*a*b*c", "xaybzc", true},
		{"*a*b*c", "xaybzcd", false},
		{"a/*", "a/b/c", true},
	} {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %t, want %t", tt.pattern, tt.s, got, tt.want)
		}
	}
}
