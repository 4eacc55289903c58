package tests

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/scenario"
)

// signatureRejectedRE matches the error of a ksu update that the trial
// load before the freeze stopped.
var signatureRejectedRE = regexp.MustCompile(`phase check, nothing was changed: trial load under lockdown integrity: .*signature verification failed`)

// TestIntegrationLockdown boots the old kernel with lockdown=integrity.
// An unsigned copy of the new kernel must be rejected at phase check,
// by ksu check and by ksu update, before the preserved clock process is
// ever stopped. Then the Debian-signed new kernel must either switch
// with the clock preserved or be rejected the same way.
func TestIntegrationLockdown(t *testing.T) {
	im := findImages(t)
	im.ExtraCmdline = scenario.LockdownCmdline
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	checkLockdown(t, ctx, g)
	logTrustedKeys(t, ctx, g)

	const clockPath = "/usr/local/bin/ksu-clock"
	if err := scenario.InstallClock(ctx, g, t.TempDir(), clockPath); err != nil {
		t.Fatal(err)
	}
	const unsigned = "/var/tmp/vmlinuz-unsigned"
	if err := scenario.InstallUnsignedKernel(ctx, g, im.Kernel(im.NewRelease), unsigned); err != nil {
		t.Fatal(err)
	}

	t.Run("unsigned kernel", func(t *testing.T) {
		clock := startClock(t, ctx, g, "lockdown-unsigned", clockPath)
		testCheckRejectsUnsigned(t, ctx, g, unsigned)
		testUpdateRejectsUnsigned(t, ctx, g, clock, unsigned)
	})
	if t.Failed() {
		return
	}
	t.Run("signed kernel", func(t *testing.T) {
		clock := startClock(t, ctx, g, "lockdown-signed", clockPath)
		testSignedUnderLockdown(t, ctx, g, im, clock, clockPath)
	})
}

// checkLockdown fails the test unless the guest runs in lockdown
// integrity mode.
func checkLockdown(t *testing.T, ctx context.Context, g *qemu.Guest) {
	t.Helper()
	out, err := g.Output(ctx, "cat", "/sys/kernel/security/lockdown")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("[integrity]")) {
		t.Fatalf("/sys/kernel/security/lockdown = %q, want [integrity] active", bytes.TrimSpace(out))
	}
}

// logTrustedKeys logs the X.509 certificates that the guest kernel
// loaded at boot and the asymmetric keys it lists, to show which keys
// kexec_file_load can verify a signature against.
func logTrustedKeys(t *testing.T, ctx context.Context, g *qemu.Guest) {
	t.Helper()
	dmesg, err := g.Output(ctx, "dmesg")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(dmesg), "\n") {
		if strings.Contains(line, "X.509") || strings.Contains(line, "keyring") {
			t.Logf("dmesg: %s", strings.TrimSpace(line))
		}
	}
	keys, err := g.Output(ctx, "cat", "/proc/keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(keys), "\n") {
		if strings.Contains(line, "asymmetri") || strings.Contains(line, "keyring") {
			t.Logf("/proc/keys: %s", line)
		}
	}
}

// testCheckRejectsUnsigned runs ksu check on the unsigned kernel, which
// must exit 1 and name signature verification.
func testCheckRejectsUnsigned(t *testing.T, ctx context.Context, g *qemu.Guest, unsigned string) {
	res, err := scenario.RunKSU(ctx, g, time.Minute, "check", "--kernel", unsigned)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check --kernel %s: exit %d\n%s", unsigned, res.ExitCode, res.Stdout)
	if res.ExitCode != 1 {
		t.Errorf("ksu check --kernel %s exit %d, want 1", unsigned, res.ExitCode)
	}
	for _, want := range []string{
		"problem: signature verification would fail: under lockdown integrity",
		"the image carries no Authenticode signature",
		"result: the update would not proceed",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("ksu check output lacks %q", want)
		}
	}
	if loaded, err := scenario.KexecLoaded(ctx, g); err != nil || loaded {
		t.Errorf("kexec_loaded after ksu check = %v, %v, want false", loaded, err)
	}
}

// testUpdateRejectsUnsigned runs ksu update on the unsigned kernel while
// a sampler watches the clock process, which must never be stopped.
func testUpdateRejectsUnsigned(t *testing.T, ctx context.Context, g *qemu.Guest, clock scenario.Preserved, unsigned string) {
	sampler, err := scenario.StartStateSampler(ctx, g, clock.PID)
	if err != nil {
		t.Fatal(err)
	}
	from := g.Mark()
	argv := []string{"/usr/sbin/ksu", "update", "--pid", strconv.Itoa(clock.PID), "--kernel", unsigned, "--yes"}
	res, err := g.Exec(ctx, qemu.Cmd{Argv: argv})
	if err != nil {
		t.Fatal(err)
	}
	states, err := sampler.Stop(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu update: exit %d, stderr: %s", res.ExitCode, bytes.TrimSpace(res.Stderr))
	t.Logf("states of process %d during ksu update: %s", clock.PID, scenario.FormatStates(states))
	if res.ExitCode == 0 {
		t.Errorf("ksu update --kernel %s exited 0, want a failure", unsigned)
	}
	if !signatureRejectedRE.Match(res.Stderr) {
		t.Errorf("ksu update stderr %q, want a match for %q", res.Stderr, signatureRejectedRE)
	}
	if !bytes.Contains(res.Stderr, []byte("carries no Authenticode signature")) {
		t.Errorf("ksu update stderr %q, want it to say the image carries no signature", res.Stderr)
	}
	if n := states["T"] + states["t"]; n > 0 || len(states) == 0 {
		t.Errorf("process %d states during ksu update: %v, want samples and none stopped (T or t)", clock.PID, states)
	}
	for _, l := range g.Console(from) {
		if strings.Contains(l.Text, "KSU-PHASE freeze") || strings.Contains(l.Text, "KSU-PHASE dump") {
			t.Errorf("console line %q: ksu froze or dumped before it rejected the kernel", l.Text)
		}
	}
	checkNothingChanged(t, ctx, g, clock)
}

// testSignedUnderLockdown updates to the Debian-signed new kernel. The
// kernel verifies Debian's signature only if the key that issued the
// signer's certificate is among its trusted keys, so either outcome is
// allowed, but each must be complete.
func testSignedUnderLockdown(t *testing.T, ctx context.Context, g *qemu.Guest, im scenario.Images, clock scenario.Preserved, clockPath string) {
	res, err := scenario.RunKSU(ctx, g, time.Minute, "check", "--kernel", "/boot/vmlinuz-"+im.NewRelease)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ksu check: exit %d\n%s", res.ExitCode, res.Stdout)
	if !strings.Contains(res.Stdout, `signature: the image is signed by "Debian Secure Boot Signer`) {
		t.Errorf("ksu check output does not name Debian's signer")
	}
	checkRejects := strings.Contains(res.Stdout, "problem: signature verification would fail")

	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--pid", strconv.Itoa(clock.PID))
	if errors.Is(err, scenario.ErrUpdateExited) {
		out, rerr := g.Output(ctx, "cat", s.LogFile)
		if rerr != nil {
			t.Fatal(rerr)
		}
		t.Logf("OUTCOME: the signed kernel was rejected: %s", bytes.TrimSpace(out))
		if !signatureRejectedRE.Match(out) {
			t.Errorf("ksu update output %q, want a match for %q", out, signatureRejectedRE)
		}
		if !checkRejects || res.ExitCode != 1 {
			t.Errorf("ksu check exit %d without a signature problem, but ksu update rejected the signature", res.ExitCode)
		}
		checkNothingChanged(t, ctx, g, clock)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("OUTCOME: the signed kernel was accepted\n%s", s.Report())
	if checkRejects {
		t.Errorf("ksu check said the signature would fail, but ksu update loaded the kernel")
	}
	if !slicesContain(s.Log, "trial load under lockdown integrity: kernel") {
		t.Errorf("ksu's kernel log %q has no trial load line", s.Log)
	}
	checkLockdown(t, ctx, g)
	rep, err := scenario.ReadReport(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff([]int32{int32(clock.PID)}, rep.Restored); diff != "" {
		t.Errorf("report restored mismatch (-want +got):\n%s", diff)
	}
	if err := clock.Alive(ctx, g, clockPath); err != nil {
		t.Errorf("after the update: %v", err)
	}
	checkClockAdvances(t, ctx, g, clock)
	if verdict, err := clock.Check(ctx, g); err != nil {
		t.Errorf("check process %d: %v", clock.PID, err)
	} else if verdict != "PASS" {
		t.Errorf("process %d: verdict %q, want PASS", clock.PID, verdict)
	}
}

// slicesContain reports whether a line of lines contains substr.
func slicesContain(lines []string, substr string) bool {
	for _, l := range lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}
