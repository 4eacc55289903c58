package qemu

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// AccelEnv names the environment variable that chooses the accelerator
// ("kvm" or "tcg") and skips the probe.
const AccelEnv = "KSU_ACCEL"

// kvmProbeTimeout bounds the KVM probe. A kernel under working KVM reaches
// its root mount in about a second. On a host whose KVM cannot run it, the
// guest hangs instead of failing, so only a timeout detects the problem.
const kvmProbeTimeout = 8 * time.Second

// kvmProbeDone matches console lines that a kernel prints only after it
// has initialized and gone looking for its init. The probe boots with no
// initrd and no disk, so it ends at the root mount.
var kvmProbeDone = regexp.MustCompile(
	`Freeing unused kernel|Run /init as init process|Unable to mount root fs|No working init found`)

var probe struct {
	mu     sync.Mutex
	done   bool
	kvm    bool
	reason string
}

// chooseAccel returns the accelerator for guests of this process and why it
// was chosen. KVM is used only if a probe boot of kernel under KVM gets far
// enough. The result is cached for the life of the process.
func chooseAccel(ctx context.Context, binary, kernel string) (accel, reason string, err error) {
	switch env := os.Getenv(AccelEnv); env {
	case AccelKVM, AccelTCG:
		return env, AccelEnv + "=" + env, nil
	case "":
	default:
		return "", "", fmt.Errorf("invalid %s=%q: want %q or %q", AccelEnv, env, AccelKVM, AccelTCG)
	}
	probe.mu.Lock()
	defer probe.mu.Unlock()
	if !probe.done {
		probe.kvm, probe.reason = probeKVM(ctx, binary, kernel)
		probe.done = true
	}
	if probe.kvm {
		return AccelKVM, probe.reason, nil
	}
	return AccelTCG, probe.reason, nil
}

// accelArgs returns the QEMU flags for accel. Under software emulation a
// 64 MiB translation cache (tb-size) matters: with the default one, the
// last page copy of a kexec takes 10-20 s.
func accelArgs(accel string) []string {
	if accel == AccelKVM {
		return []string{"-accel", "kvm", "-cpu", "host"}
	}
	return []string{"-accel", "tcg,tb-size=64", "-cpu", "max"}
}

// probeKVM boots kernel under KVM with no initrd and no disk, and reports
// whether its console shows it reaching the root mount in time.
func probeKVM(ctx context.Context, binary, kernel string) (ok bool, reason string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("kvm unusable: %v", err)
	}
	f.Close()

	ctx, cancel := context.WithTimeout(ctx, kvmProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary,
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-accel", "kvm", "-cpu", "host", "-m", "256",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=7",
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return false, fmt.Sprintf("kvm probe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Sprintf("kvm probe: start %s: %v", binary, err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	start := time.Now()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if kvmProbeDone.MatchString(sc.Text()) {
			return true, fmt.Sprintf("kvm probe reached %q in %s", sc.Text(),
				time.Since(start).Round(time.Millisecond))
		}
	}
	return false, fmt.Sprintf("kvm probe: kernel did not reach its root mount within %s", kvmProbeTimeout)
}
