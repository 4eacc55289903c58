package vdso

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRunningKernel(t *testing.T) {
	data, base, err := ReadSelf()
	if err != nil {
		t.Skipf("skipping: no vDSO to read: %v", err)
	}
	img, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(own vDSO at 0x%x) = %v, want nil error", base, err)
	}
	if img.Size != uint64(len(data)) {
		t.Errorf("Parse(own vDSO).Size = %d, want %d", img.Size, len(data))
	}
	if _, ok := img.Lookup("__vdso_clock_gettime", "LINUX_2.6"); !ok {
		t.Errorf("Parse(own vDSO) has no __vdso_clock_gettime@LINUX_2.6; symbols: %+v", img.Symbols)
	}
	plan, err := NewPlan(img, img)
	if err != nil || plan.Strategy != Remap {
		t.Errorf("NewPlan(own vDSO, own vDSO) = %v, %v, want remap", plan.Strategy, err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "out of range"},
		{"too large", make([]byte, maxImageSize+1), "out of range"},
		{"not ELF", []byte(strings.Repeat("x", 4096)), "parse vDSO"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

// image builds an Image of size bytes from name@offset pairs.
func image(size uint64, syms ...Symbol) *Image {
	for i := range syms {
		if syms[i].Version == "" {
			syms[i].Version = "LINUX_2.6"
		}
	}
	return &Image{Size: size, Symbols: syms}
}

var old61 = image(8192,
	Symbol{Name: "__vdso_gettimeofday", Offset: 0x800, Size: 600},
	Symbol{Name: "gettimeofday", Offset: 0x800, Size: 600},
	Symbol{Name: "__vdso_time", Offset: 0xa60, Size: 40},
	Symbol{Name: "__vdso_clock_gettime", Offset: 0xa90, Size: 800},
	Symbol{Name: "__vdso_getcpu", Offset: 0xdc0, Size: 40},
)

func TestNewPlanSameLayoutRemaps(t *testing.T) {
	plan, err := NewPlan(old61, old61)
	if err != nil || plan.Strategy != Remap || len(plan.Patches) != 0 {
		t.Errorf("NewPlan(same) = %+v, %v, want remap with no patches", plan, err)
	}
}

func TestNewPlanMovedFunctionsJump(t *testing.T) {
	cur := image(8192,
		Symbol{Name: "__vdso_gettimeofday", Offset: 0x830},
		Symbol{Name: "__vdso_time", Offset: 0xae0},
		Symbol{Name: "__vdso_clock_gettime", Offset: 0xb10},
		Symbol{Name: "__vdso_getcpu", Offset: 0xf20},
		Symbol{Name: "__vdso_getrandom", Offset: 0xf60},
	)
	plan, err := NewPlan(old61, cur)
	if err != nil {
		t.Fatalf("NewPlan(6.1-like, 6.12-like) = %v, want nil error", err)
	}
	var got []string
	for _, p := range plan.Patches {
		got = append(got, p.Symbol.Name+"->"+p.Target.Name)
	}
	want := []string{
		"__vdso_gettimeofday->__vdso_gettimeofday",
		"__vdso_time->__vdso_time",
		"__vdso_clock_gettime->__vdso_clock_gettime",
		"__vdso_getcpu->__vdso_getcpu",
	}
	if plan.Strategy != Trampoline {
		t.Errorf("NewPlan strategy = %v, want trampoline", plan.Strategy)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewPlan patches mismatch (-want +got):\n%s", diff)
	}
}

func TestNewPlanMissingFunctionFallsBack(t *testing.T) {
	old := image(8192,
		Symbol{Name: "__vdso_clock_gettime", Offset: 0xb10},
		Symbol{Name: "__vdso_getrandom", Offset: 0xf60},
		Symbol{Name: "getrandom", Offset: 0xf60},
	)
	cur := image(8192, Symbol{Name: "__vdso_clock_gettime", Offset: 0xa90})
	plan, err := NewPlan(old, cur)
	if err != nil {
		t.Fatalf("NewPlan(with getrandom, without) = %v, want nil error", err)
	}
	if len(plan.Patches) != 2 {
		t.Fatalf("NewPlan patches = %+v, want 2 (aliases share one)", plan.Patches)
	}
	if p := plan.Patches[1]; p.Target.Name != "" || p.Syscall != 318 {
		t.Errorf("getrandom patch = %+v, want the getrandom system call (318)", p)
	}
}

func TestNewPlanRejects(t *testing.T) {
	for _, tt := range []struct {
		name     string
		old, cur *Image
		want     string
	}{
		{
			"unknown missing function",
			image(8192, Symbol{Name: "__vdso_sgx_enter_enclave", Offset: 0x100}),
			image(8192, Symbol{Name: "__vdso_time", Offset: 0x200}),
			"__vdso_sgx_enter_enclave",
		},
		{
			"no room for a jump",
			image(8192, Symbol{Name: "__vdso_time", Offset: 0x100}, Symbol{Name: "__vdso_getcpu", Offset: 0x108}),
			image(4096, Symbol{Name: "__vdso_time", Offset: 0x200}, Symbol{Name: "__vdso_getcpu", Offset: 0x300}),
			"a jump needs 13",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPlan(tt.old, tt.cur)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewPlan(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestApplyWritesEntries(t *testing.T) {
	old := image(4096,
		Symbol{Name: "__vdso_time", Offset: 0x100},
		Symbol{Name: "__vdso_getrandom", Offset: 0x200},
	)
	cur := image(8192, Symbol{Name: "__vdso_time", Offset: 0x900})
	plan, err := NewPlan(old, cur)
	if err != nil {
		t.Fatal(err)
	}
	oldImage := bytes.Repeat([]byte{0x90}, 4096)
	const newBase = 0x7fff00000000
	out, err := plan.Apply(oldImage, newBase)
	if err != nil {
		t.Fatal(err)
	}

	jump := out[0x100 : 0x100+jumpSize]
	if jump[0] != 0x49 || jump[1] != 0xbb || binary.LittleEndian.Uint64(jump[2:]) != newBase+0x900 ||
		!bytes.Equal(jump[10:], []byte{0x41, 0xff, 0xe3}) {
		t.Errorf("jump at 0x100 = % x, want movabs $0x%x, %%r11; jmp *%%r11", jump, newBase+0x900)
	}
	want := []byte{0xb8, 0x3e, 0x01, 0, 0, 0x0f, 0x05, 0xc3}
	if got := out[0x200 : 0x200+syscallSize]; !bytes.Equal(got, want) {
		t.Errorf("fallback at 0x200 = % x, want % x (mov $318, %%eax; syscall; ret)", got, want)
	}
	if out[0] != 0x90 || out[0x100+jumpSize] != 0x90 {
		t.Errorf("Apply changed bytes outside the entries")
	}
	if oldImage[0x100] != 0x90 {
		t.Errorf("Apply modified its input")
	}
}
