package tests

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// TestUpdateLatestAfterInstall follows an administrator who installs a
// newer kernel package and then runs ksu update --latest. The guest boots
// an earlier stable update of the old release with every other kernel
// removed, so ksu update --latest must fail and name what is missing.
// dpkg then installs the old release's package from the guest disk, ksu
// check --latest must name that release, and ksu update --latest --yes
// must switch to it with a clock workload preserved. Afterwards ksu
// status --json must match the switch the test saw.
func TestUpdateLatestAfterInstall(t *testing.T) {
	im := findImages(t)
	stable := earlierStable(im)
	if stable == "" {
		t.Skipf("skipping: the images hold no other stable update of %s (EXTRA_KERNEL_PKGS in qemu/versions; ./build.sh setup builds it)",
			im.OldRelease)
	}
	deb, err := scenario.KernelDeb(im)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, stable)
	var others []string
	for _, rel := range append([]string{im.OldRelease, im.NewRelease}, im.ExtraReleases...) {
		if rel != stable {
			others = append(others, rel)
		}
	}
	if err := scenario.RemoveKernels(ctx, g, others...); err != nil {
		t.Fatal(err)
	}

	const clockPath = "/usr/local/bin/ksu-clock"
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	clock, err := scenario.StartWorkload(ctx, g, "clock", clockPath)
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(clock.PID)

	testLatestMissing(t, ctx, g, stable, clock)
	if t.Failed() {
		return
	}
	installKernelDeb(t, ctx, g, deb, im.OldRelease, clock)
	testCheckLatest(t, ctx, g, im.OldRelease, pid)

	s, err := scenario.UpdateLatest(ctx, g, im.OldRelease, "--pid", pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())
	if s.To != im.OldRelease {
		t.Fatalf("ksu update --latest switched to %s, want %s", s.To, im.OldRelease)
	}
	checkLatestStatus(t, ctx, g, s, stable, clock)
	verdict, err := clock.Check(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if verdict != "PASS" {
		t.Errorf("clock %d after ksu update --latest: verdict %q, want PASS", clock.PID, verdict)
	}
}

// testLatestMissing runs ksu update --latest --yes with only the running
// kernel installed: it must fail before anything changes, with a message
// that names /boot and what to install, and leave the clock running.
func testLatestMissing(t *testing.T, ctx context.Context, g *qemu.Guest, running string, clock scenario.Preserved) {
	t.Helper()
	res, err := scenario.RunKSU(ctx, g, time.Minute, "update", "--latest", "--yes", "--pid", strconv.Itoa(clock.PID))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu update --latest with no other kernel: exit %d, stderr %q", res.ExitCode, res.Stderr)
	if res.ExitCode == 0 {
		t.Errorf("ksu update --latest with no other kernel exit status = 0, want a failure")
	}
	for _, want := range []string{"no kernel in /boot other than the running " + running, "install a linux-image package"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("ksu update --latest stderr = %q, want it to contain %q", res.Stderr, want)
		}
	}
	if loaded, err := scenario.KexecLoaded(ctx, g); err != nil || loaded {
		t.Errorf("kexec_loaded after the failed update = %v, %v, want false", loaded, err)
	}
	if err := clock.Alive(ctx, g, "/usr/local/bin/ksu-clock"); err != nil {
		t.Errorf("after the failed update: %v", err)
	}
}

// installKernelDeb installs the package deb in the two steps of dpkg -i,
// --unpack and --configure, and checks ksu in between (see
// testUnpackedKernel). After the configure step, modules.dep must exist.
func installKernelDeb(t *testing.T, ctx context.Context, g *qemu.Guest, deb, release string,
	clock scenario.Preserved) {
	t.Helper()
	unpack, err := scenario.Dpkg(ctx, g, 3*time.Minute, "--unpack", deb)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg --unpack %s: exit %d in %s\n%s", deb, unpack.ExitCode, unpack.Took.Round(time.Millisecond), unpack.Output)
	if unpack.ExitCode != 0 {
		t.Fatalf("dpkg --unpack %s exit status = %d, want 0", deb, unpack.ExitCode)
	}

	testUnpackedKernel(t, ctx, g, release, clock)

	configure, err := scenario.Dpkg(ctx, g, 5*time.Minute, "--configure", "-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg --configure -a: exit %d in %s\n%s", configure.ExitCode, configure.Took.Round(time.Millisecond), configure.Output)
	if configure.ExitCode != 0 {
		t.Fatalf("dpkg --configure -a exit status = %d, want 0", configure.ExitCode)
	}
	dep := "/lib/modules/" + release + "/modules.dep"
	if _, err := g.Output(ctx, "test", "-s", dep); err != nil {
		t.Errorf("after dpkg --configure: %s is missing or empty (%v), want the postinst's depmod to have written it", dep, err)
	}
}

// testUnpackedKernel checks ksu with the package of release unpacked but
// not configured. The kernel has its /boot files but no modules.dep,
// because the package ships none and its postinst runs depmod. ksu check
// --latest must pick the kernel and name the missing index and dpkg
// --configure, and ksu update --latest must fail with the same words and
// leave the clock running.
func testUnpackedKernel(t *testing.T, ctx context.Context, g *qemu.Guest, release string, clock scenario.Preserved) {
	t.Helper()
	pid := strconv.Itoa(clock.PID)
	want := "package linux-image-" + release + " is unpacked but not configured: run dpkg --configure -a"
	rep, res, err := scenario.Check(ctx, g, "--latest", "--pid", pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --json --latest --pid %s with the package unpacked:\n%s", pid, res.Stdout)
	if rep.Kernel == nil || rep.Kernel.Release != release {
		t.Fatalf("ksu check --latest kernel = %+v, want release %s", rep.Kernel, release)
	}
	if res.ExitCode != 1 || rep.Proceed {
		t.Errorf("ksu check --latest with the package unpacked = exit %d, proceed %v, want 1 and false",
			res.ExitCode, rep.Proceed)
	}
	if !slices.ContainsFunc(rep.Kernel.Problems, func(p string) bool {
		return strings.Contains(p, "modules.dep") && strings.Contains(p, want)
	}) {
		t.Errorf("ksu check --latest problems = %q, want one naming modules.dep and %q", rep.Kernel.Problems, want)
	}

	upd, err := scenario.RunKSU(ctx, g, time.Minute, "update", "--latest", "--yes", "--pid", pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu update --latest with the package unpacked: exit %d, stderr %q", upd.ExitCode, upd.Stderr)
	if upd.ExitCode == 0 {
		t.Errorf("ksu update --latest with the package unpacked exit status = 0, want a failure")
	}
	for _, w := range []string{"nothing was changed", "modules.dep", want} {
		if !strings.Contains(upd.Stderr, w) {
			t.Errorf("ksu update --latest stderr = %q, want it to contain %q", upd.Stderr, w)
		}
	}
	if err := clock.Alive(ctx, g, "/usr/local/bin/ksu-clock"); err != nil {
		t.Errorf("after the update with the package unpacked: %v", err)
	}
}

// testCheckLatest runs ksu check --latest on the clock: it must pick the
// release just installed and accept the switch.
func testCheckLatest(t *testing.T, ctx context.Context, g *qemu.Guest, release, pid string) {
	t.Helper()
	rep, res, err := scenario.Check(ctx, g, "--latest", "--pid", pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --json --latest --pid %s:\n%s", pid, res.Stdout)
	if rep.Kernel == nil || rep.Kernel.Release != release || rep.Kernel.Path != "/boot/vmlinuz-"+release {
		t.Fatalf("ksu check --latest kernel = %+v, want release %s at /boot/vmlinuz-%s", rep.Kernel, release, release)
	}
	if res.ExitCode != 0 || !rep.Proceed || len(rep.Kernel.Problems) != 0 {
		t.Errorf("ksu check --latest = exit %d, proceed %v, problems %q, want 0, true and none; stderr %q",
			res.ExitCode, rep.Proceed, rep.Kernel.Problems, res.Stderr)
	}
	// The package's postinst runs linux-update-symlinks, which points
	// /vmlinuz at the kernel it installed, so a reboot would start it too.
	if rep.Kernel.BootDefault != "yes" {
		t.Errorf("ksu check --latest boot_default = %q, want yes after dpkg --configure", rep.Kernel.BootDefault)
	}
}

// checkLatestStatus checks ksu status --json after the switch s: the
// kernels, the restored process and the phases the console showed.
func checkLatestStatus(t *testing.T, ctx context.Context, g *qemu.Guest, s scenario.Switch, from string,
	clock scenario.Preserved) {
	t.Helper()
	st, err := scenario.Status(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu status --json: %+v", st)
	if st.Report.Kernel != s.To || st.Report.SnapshotKernel != from {
		t.Errorf("ksu status kernels = %s from %s, want %s from %s",
			st.Report.Kernel, st.Report.SnapshotKernel, s.To, from)
	}
	if diff := cmp.Diff([]int32{int32(clock.PID)}, st.Report.Restored); diff != "" {
		t.Errorf("ksu status restored mismatch (-want +got):\n%s\nfailures %+v", diff, st.Report.Failures)
	}
	compareStatus(t, s, st)
}
