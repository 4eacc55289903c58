package main

import "testing"

func TestParseMountinfoLine(t *testing.T) {
	for _, tt := range []struct {
		name, line                          string
		device, mountPoint, options, fsType string
		ok                                  bool
	}{
		{
			name:   "root ext4",
			line:   "25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro",
			device: "254:0", mountPoint: "/", options: "rw,relatime", fsType: "ext4", ok: true,
		},
		{
			name:   "no optional fields",
			line:   "30 25 0:26 / /run rw,nosuid,nodev - tmpfs tmpfs rw,size=200k",
			device: "0:26", mountPoint: "/run", options: "rw,nosuid,nodev", fsType: "tmpfs", ok: true,
		},
		{
			name:   "escaped space",
			line:   `40 25 254:1 / /mnt/my\040disk ro - xfs /dev/vdb ro`,
			device: "254:1", mountPoint: "/mnt/my disk", options: "ro", fsType: "xfs", ok: true,
		},
		{name: "no separator", line: "25 1 254:0 / / rw,relatime ext4 /dev/vda"},
		{name: "empty", line: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			device, mountPoint, options, fsType, ok := parseMountinfoLine(tt.line)
			if ok != tt.ok || device != tt.device || mountPoint != tt.mountPoint ||
				options != tt.options || fsType != tt.fsType {
				t.Errorf("parseMountinfoLine(%q) = %q, %q, %q, %q, %v, want %q, %q, %q, %q, %v",
					tt.line, device, mountPoint, options, fsType, ok,
					tt.device, tt.mountPoint, tt.options, tt.fsType, tt.ok)
			}
		})
	}
}

func TestUnescapeOctal(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`/a\040b`, "/a b"},
		{`/tab\011`, "/tab\t"},
		{`/back\134slash`, `/back\slash`},
		{`/short\04`, `/short\04`},
		{`/plain`, "/plain"},
	} {
		if got := unescapeOctal(tt.in); got != tt.want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
