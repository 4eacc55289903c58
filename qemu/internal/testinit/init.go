package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	agentPath = "/ksu-agent"
	// maxAgentStarts bounds the restarts of an agent that keeps failing.
	maxAgentStarts = 20
	agentRestart   = 200 * time.Millisecond
)

func logf(format string, args ...any) {
	fmt.Printf("KSU-TESTINIT "+format+"\n", args...)
}

// runInit is PID 1. It returns only if the guest is not a test guest, and
// the kernel then panics, which ends QEMU.
func runInit() {
	mountEarly()
	attachConsole()
	if !inTestGuest() {
		logf("no %s on the kernel command line: not a test guest, stopping", marker)
		return
	}
	gen := cmdlineParam("ksu.testinit.gen")
	if gen == "" {
		gen = "1"
	}
	var u unix.Utsname
	unix.Uname(&u)
	logf("start gen=%s release=%s", gen, unix.ByteSliceToString(u.Release[:]))
	loadModules("/modules")

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, unix.SIGUSR1, unix.SIGUSR2)
	exits := make(chan int, 16)
	go reap(exits)

	agentPID := startAgent()
	logf("ready gen=%s", gen)
	supervise(agentPID, signals, exits, gen)
}

// supervise handles signals and restarts the agent when it exits, up to
// maxAgentStarts times. It never returns.
func supervise(agentPID int, signals <-chan os.Signal, exits <-chan int, gen string) {
	starts := 1
	for {
		select {
		case sig := <-signals:
			handleSignal(sig, gen)
		case pid := <-exits:
			if pid != agentPID {
				continue
			}
			if starts >= maxAgentStarts {
				logf("agent exited %d times, not restarting it", starts)
				agentPID = -1
				continue
			}
			time.Sleep(agentRestart)
			agentPID = startAgent()
			starts++
			logf("agent restarted, pid %d", agentPID)
		}
	}
}

func mountEarly() {
	for _, m := range []struct{ source, target, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.target, 0o755)
		if err := unix.Mount(m.source, m.target, m.fstype, 0, ""); err != nil {
			fmt.Fprintf(os.Stderr, "testinit: mount %s on %s: %v\n", m.fstype, m.target, err)
		}
	}
}

// attachConsole makes /dev/console stdin, stdout and stderr. The kernel
// opens it for init before devtmpfs is mounted, which fails in an
// initramfs without a /dev/console node.
func attachConsole() {
	fd, err := unix.Open("/dev/console", unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for target := 0; target <= 2; target++ {
		unix.Dup3(fd, target, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

// loadModules loads the modules that dir/order names, one file name a
// line, in that order.
func loadModules(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(b)) {
		if err := loadModule(filepath.Join(dir, name)); err != nil {
			logf("load module %s: %v", name, err)
		}
	}
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func startAgent() int {
	attr := &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}}
	p, err := os.StartProcess(agentPath, []string{agentPath,
		"--port", "/dev/virtio-ports/org.ksu.agent", "--spawn-dir", "/tmp/spawn"}, attr)
	if err != nil {
		logf("start agent: %v", err)
		return -1
	}
	logf("agent started, pid %d", p.Pid)
	return p.Pid
}

// reap collects every child and orphan and sends their pids to exits.
func reap(exits chan<- int) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		exits <- pid
	}
}

func handleSignal(sig os.Signal, gen string) {
	switch sig {
	case unix.SIGUSR1:
		if err := kexec(gen); err != nil {
			logf("kexec failed: %v", err)
		}
	case unix.SIGUSR2:
		logf("power off")
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			logf("power off failed: %v", err)
		}
	}
}

// kexec boots /kexec/vmlinuz with /kexec/initrd.cpio and the current
// command line, with ksu.testinit.gen counting the boots.
func kexec(gen string) error {
	kernel, err := os.Open("/kexec/vmlinuz")
	if err != nil {
		return err
	}
	defer kernel.Close()
	initrd, err := os.Open("/kexec/initrd.cpio")
	if err != nil {
		return err
	}
	defer initrd.Close()
	n, _ := strconv.Atoi(gen)
	var params []string
	for _, p := range strings.Fields(readCmdline()) {
		if !strings.HasPrefix(p, "ksu.testinit.gen=") {
			params = append(params, p)
		}
	}
	cmdline := strings.Join(append(params, fmt.Sprintf("ksu.testinit.gen=%d", n+1)), " ")
	if err := unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), cmdline, 0); err != nil {
		return fmt.Errorf("kexec_file_load: %w", err)
	}
	logf("kexec to %q", cmdline)
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
}
