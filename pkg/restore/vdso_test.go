package restore

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/pkg/vdso"
)

func TestVvarBefore(t *testing.T) {
	tests := []struct {
		name string
		maps []procfs.Mapping
		want uint64
	}{
		{"6.1", []procfs.Mapping{
			{Start: 0x7ffd000, End: 0x7fff000, Path: "[stack]"},
			{Start: 0x8000000, End: 0x8004000, Path: "[vvar]"},
			{Start: 0x8004000, End: 0x8006000, Path: "[vdso]"},
		}, 0x4000},
		{"6.12", []procfs.Mapping{
			{Start: 0x8000000, End: 0x8004000, Path: "[vvar]"},
			{Start: 0x8004000, End: 0x8006000, Path: "[vvar_vclock]"},
			{Start: 0x8006000, End: 0x8008000, Path: "[vdso]"},
		}, 0x6000},
		{"vvar not adjacent", []procfs.Mapping{
			{Start: 0x7000000, End: 0x7004000, Path: "[vvar]"},
			{Start: 0x7ffe000, End: 0x8000000},
			{Start: 0x8000000, End: 0x8002000, Path: "[vdso]"},
		}, 0},
	}
	for _, tt := range tests {
		start := tt.maps[len(tt.maps)-1].Start
		if got := vvarBefore(tt.maps, start); got != tt.want {
			t.Errorf("%s: vvarBefore(maps, %#x) = %#x, want %#x", tt.name, start, got, tt.want)
		}
	}
}

func TestFreeRange(t *testing.T) {
	stub := [2]uint64{0x10000, 0x20000}
	tests := []struct {
		name       string
		busy       [][2]uint64
		size, near uint64
		want       uint64
		wantErr    bool
	}{
		{"right below", [][2]uint64{stub, {0x8004000, 0x8006000}}, 0x8000, 0x8004000, 0x7ffc000, false},
		{"below a neighbour", [][2]uint64{stub, {0x7ffe000, 0x8000000}, {0x8004000, 0x8006000}},
			0x8000, 0x8004000, 0x7ff6000, false},
		{"above when below is full", [][2]uint64{stub, {0x20000, 0x8004000}, {0x8004000, 0x8006000}},
			0x8000, 0x8004000, 0x8006000, false},
		{"nothing free", [][2]uint64{{0, maxUserAddr}}, 0x8000, 0x8004000, 0, true},
	}
	for _, tt := range tests {
		got, err := freeRange(tt.busy, tt.size, tt.near)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: freeRange(%#x, %#x) error = %v, want error %v", tt.name, tt.size, tt.near, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: freeRange(%#x, %#x) = %#x, want %#x", tt.name, tt.size, tt.near, got, tt.want)
		}
		if _, clash := overlap(tt.busy, got, got+tt.size); err == nil && clash {
			t.Errorf("%s: freeRange(%#x, %#x) = %#x overlaps a busy range", tt.name, tt.size, tt.near, got)
		}
	}
}

func TestBusyRangesLeaveVvarFree(t *testing.T) {
	vmas := []snapshot.VMA{
		{Start: 0x1000000, End: 0x1001000, Kind: snapshot.VMAFile},
		{Start: 0x8000000, End: 0x8004000, Kind: snapshot.VMAVVAR},
		{Start: 0x8004000, End: 0x8006000, Kind: snapshot.VMAVVARVClock},
		{Start: 0x8006000, End: 0x8008000, Kind: snapshot.VMAVDSO},
	}
	got := busyRanges(vmas, [2]uint64{0x10000, 0x20000})
	want := [][2]uint64{{0x10000, 0x20000}, {0x1000000, 0x1001000}, {0x8006000, 0x8008000}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("busyRanges mismatch (-want +got):\n%s", diff)
	}
}

func TestNewVDSOSwitch(t *testing.T) {
	self, _, err := vdso.ReadSelf()
	if err != nil {
		t.Skipf("skipping: this process has no readable vDSO: %v", err)
	}
	rel := runningRelease()
	tests := []struct {
		name    string
		meta    snapshot.Meta
		want    vdso.Strategy
		wantErr string
	}{
		{"same image", snapshot.Meta{KernelRelease: "other", VDSO: self}, vdso.Remap, ""},
		{"no image, same release", snapshot.Meta{KernelRelease: rel}, vdso.Remap, ""},
		{"no image, other release", snapshot.Meta{KernelRelease: "0.0-other"}, 0, "records no vDSO image"},
		{"truncated image", snapshot.Meta{KernelRelease: rel, VDSO: self[:64]}, 0, "snapshot's vDSO"},
	}
	for _, tt := range tests {
		sw, err := newVDSOSwitch(tt.meta)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: newVDSOSwitch() error = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: newVDSOSwitch() error = %v", tt.name, err)
			continue
		}
		if sw.plan.Strategy != tt.want {
			t.Errorf("%s: newVDSOSwitch() strategy = %v, want %v", tt.name, sw.plan.Strategy, tt.want)
		}
		if sw.size == 0 || sw.vvarSize == 0 {
			t.Errorf("%s: newVDSOSwitch() sizes vdso %d, vvar %d, want both set", tt.name, sw.size, sw.vvarSize)
		}
	}
}
