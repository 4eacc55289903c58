package procfs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadStatus(t *testing.T) {
	got, err := ReadStatus(testRoot, testPid)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{
		Name: "capture", Umask: 0o022, State: 'R',
		Tgid: testPid, Pid: testPid, PPid: 15656,
		Groups: []uint32{},
		NStgid: []int{testPid}, NSpid: []int{testPid}, NSpgid: []int{15656}, NSsid: []int{2989},
		Threads: 5,
		SigCgt:  0xfffffffd7fc1feff,
		CapPrm:  0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadStatus(%d) mismatch (-want +got):\n%s", testPid, diff)
	}
}

func TestParseStatus(t *testing.T) {
	for _, tt := range []struct {
		name string
		data string
		want Status
	}{
		{
			"escaped name",
			"Name:\t a\\\\b\\nc \n",
			Status{Name: " a\\b\nc "},
		},
		{
			"ids and groups",
			"Uid:\t1000\t1001\t1002\t1003\nGid:\t100\t100\t100\t100\nGroups:\t4 24 27 \n",
			Status{Uid: [4]uint32{1000, 1001, 1002, 1003}, Gid: [4]uint32{100, 100, 100, 100}, Groups: []uint32{4, 24, 27}},
		},
		{
			"nested pid namespace, seccomp filter",
			"NSpid:\t4242\t17\t1\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\nSigBlk:\t0000000000010000\n",
			Status{NSpid: []int{4242, 17, 1}, NoNewPrivs: true, Seccomp: 2, SeccompFilters: 3, SigBlk: 1 << 16},
		},
		{
			"unknown keys skipped",
			"Kthread:\t0\nuntag_mask:\t0xffffffffffffffff\nMems_allowed:\t00000000,00000001\n",
			Status{},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus(strings.NewReader(tt.data))
			if err != nil {
				t.Fatalf("ParseStatus(%q) = %v, want nil error", tt.data, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseStatus(%q) mismatch (-want +got):\n%s", tt.data, diff)
			}
		})
	}
}

func TestParseStatusInvalid(t *testing.T) {
	for _, data := range []string{
		"Tgid 12\n",
		"Tgid:\tx\n",
		"Uid:\t0\t0\t0\n",
		"SigBlk:\tzz\n",
		"Umask:\t0999\n",
		"State:\t\n",
	} {
		if got, err := ParseStatus(strings.NewReader(data)); err == nil {
			t.Errorf("ParseStatus(%q) = %+v, want an error", data, got)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add("Name:\tcapture\nUid:\t0\t0\t0\t0\nGroups:\t \nNSpid:\t1\t2\nSigCgt:\tfffffffd7fc1feff\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseStatus(strings.NewReader(data))
	})
}
