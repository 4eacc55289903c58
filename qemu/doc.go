// Package qemu boots QEMU guests and drives them, for the end-to-end tests
// and the demo.
//
// A guest boots a kernel (with an optional initramfs and raw disk image)
// under KVM when a probe shows that KVM can run it, and under software
// emulation otherwise. Its serial console is collected line by line with
// the time each line arrived, and a virtio-serial port connects the host to
// ksu-agent inside the guest (qemu/guestagent), which runs commands on
// request. The QEMU monitor (QMP) is available for the rest.
//
// In a test:
//
//	g := qemu.StartT(t, qemu.Config{
//		Kernel:   filepath.Join(images, "kernels", release, "vmlinuz"),
//		Initrd:   filepath.Join(images, "kernels", release, "initrd.cpio"),
//		Disk:     filepath.Join(images, "rootfs.img"),
//		Cmdline:  "root=/dev/vda rw",
//		Forwards: []qemu.Forward{{GuestPort: 6379}},
//	})
//	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
//	defer cancel()
//	info, err := g.WaitAgent(ctx) // info.Release is the running kernel
//	out, err := g.Output(ctx, "uname", "-r")
//	mark := g.Mark()
//	_, err = g.Spawn(ctx, "ksu", "update", "--kernel", "/boot/vmlinuz-"+newRelease, "--yes")
//	booted := regexp.MustCompile(`Linux version ` + regexp.QuoteMeta(newRelease))
//	_, err = g.WaitConsoleFrom(ctx, mark, booted)
//	info, err = g.WaitAgent(ctx) // the agent on the new kernel
//	addr := fmt.Sprintf("127.0.0.1:%d", g.HostPort(6379))
//
// Outside tests, Start and Close do the same; Close must always be called.
//
// # Acceleration
//
// KVM is used only when /dev/kvm opens and a probe boot of the guest's
// kernel under KVM reaches its root mount within 8 seconds. The probe runs
// once per process. Some hosts expose /dev/kvm but cannot run an ordinary
// kernel with it, and the guest then hangs rather than fails, which only a
// timeout detects. KSU_ACCEL=kvm or KSU_ACCEL=tcg skips the probe.
//
// # Files
//
// WorkDir receives these files:
//
//	console.log  every console line, prefixed with the seconds since QEMU started
//	qemu.log     QEMU's own stderr
//	disk.qcow2   the overlay that receives the guest's writes
//	agent.sock   the agent's port, unless the path is too long for a unix socket
//	qmp.sock     the QEMU monitor, likewise
//
// # Lifetime
//
// QEMU runs with -no-reboot, so a guest that powers off, reboots or panics
// ends QEMU, and every wait fails at once with an error that wraps
// ErrExited and quotes the console. QEMU gets SIGKILL when the process that
// started it dies, so a crashed test leaves no guest behind.
package qemu
