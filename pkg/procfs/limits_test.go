package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestReadLimits(t *testing.T) {
	limits, err := ReadLimits(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	if len(limits) != 16 {
		t.Fatalf("ReadLimits(%d) returned %d limits, want 16", testPid, len(limits))
	}
	for i, l := range limits {
		if l.Resource != i {
			t.Errorf("limit %d (%q) has resource %d, want the kernel's order", i, l.Name, l.Resource)
		}
	}
	for _, want := range []Limit{
		{Name: "Max cpu time", Resource: unix.RLIMIT_CPU, Soft: unix.RLIM_INFINITY, Hard: unix.RLIM_INFINITY, Unit: "seconds"},
		{Name: "Max stack size", Resource: unix.RLIMIT_STACK, Soft: 8388608, Hard: unix.RLIM_INFINITY, Unit: "bytes"},
		{Name: "Max open files", Resource: unix.RLIMIT_NOFILE, Soft: 20000, Hard: 20000, Unit: "files"},
		{Name: "Max nice priority", Resource: unix.RLIMIT_NICE},
	} {
		if diff := cmp.Diff(want, limits[want.Resource]); diff != "" {
			t.Errorf("limit %q mismatch (-want +got):\n%s", want.Name, diff)
		}
	}
}

func TestParseLimitsInvalid(t *testing.T) {
	for _, data := range []string{
		"Max cpu time\n",
		"Max teleports             1                    1                    jumps     \n",
		"Max open files            x                    1024                 files     \n",
		"Max open files            1024                 \n",
	} {
		if got, err := ParseLimits(strings.NewReader(data)); err == nil {
			t.Errorf("ParseLimits(%q) = %+v, want an error", data, got)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	f.Add("Limit                     Soft Limit           Hard Limit           Units     \nMax stack size            8388608              unlimited            bytes     \nMax nice priority         0                    0                    \n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseLimits(strings.NewReader(data))
	})
}
