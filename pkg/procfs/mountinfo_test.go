package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadMountInfo(t *testing.T) {
	mounts, err := ReadMountInfo(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	byPoint := make(map[string]Mount)
	for _, m := range mounts {
		byPoint[m.MountPoint] = m
	}
	for _, want := range []Mount{
		{ID: 66, ParentID: 46, Minor: 40, Root: "/", MountPoint: "/tmp/capture/mnt dir", Options: "rw,relatime",
			FSType: "tmpfs", Source: "ksu tmp", SuperOptions: "rw,size=1024k,mode=700"},
		{ID: 67, ParentID: 46, Minor: 41, Root: "/", MountPoint: "/tmp/capture/shared", Options: "rw,relatime",
			Optional: []string{"shared:1"}, FSType: "tmpfs", Source: "tmpfs", SuperOptions: "rw,size=1024k"},
		{ID: 68, ParentID: 46, Minor: 41, Root: "/", MountPoint: "/tmp/capture/slave", Options: "rw,relatime",
			Optional: []string{"master:1"}, FSType: "tmpfs", Source: "tmpfs", SuperOptions: "rw,size=1024k"},
	} {
		if diff := cmp.Diff(want, byPoint[want.MountPoint]); diff != "" {
			t.Errorf("mount at %q mismatch (-want +got):\n%s", want.MountPoint, diff)
		}
	}
}

func TestParseMountInfoLine(t *testing.T) {
	line := `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 propagate_from:2 - ext3 /dev/root rw,errors=continue`
	want := Mount{ID: 36, ParentID: 35, Major: 98, Root: "/mnt1", MountPoint: "/mnt2", Options: "rw,noatime",
		Optional: []string{"master:1", "propagate_from:2"}, FSType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"}
	got, err := parseMountInfoLine(line)
	if err != nil {
		t.Fatalf("parseMountInfoLine(%q) = %v, want nil error", line, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseMountInfoLine(%q) mismatch (-want +got):\n%s", line, diff)
	}
}

func TestUnescapeOctal(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`/a\040b`, "/a b"},
		{`/tab\011nl\012bs\134`, "/tab\tnl\nbs\\"},
		{`/not\999octal\04`, `/not\999octal\04`},
		{`\400`, `\400`},
	} {
		if got := unescapeOctal(tt.in); got != tt.want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseMountInfoInvalid(t *testing.T) {
	for _, data := range []string{
		"36 35 98:0 /mnt1 /mnt2 rw ext3 /dev/root rw\n",
		"36 35 98:0 /mnt1 /mnt2 rw - ext3 /dev/root\n",
		"x 35 98:0 / / rw - ext3 /dev/root rw\n",
		"36 35 98 / / rw - ext3 /dev/root rw\n",
	} {
		if got, err := ParseMountInfo(strings.NewReader(data)); err == nil {
			t.Errorf("ParseMountInfo(%q) = %+v, want an error", data, got)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add("66 46 0:40 / /tmp/capture/mnt\\040dir rw,relatime - tmpfs ksu\\040tmp rw,size=1024k,mode=700\n")
	f.Add("67 46 0:41 / /tmp/capture/shared rw,relatime shared:1 - tmpfs tmpfs rw,size=1024k\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseMountInfo(strings.NewReader(data))
	})
}
