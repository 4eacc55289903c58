package qemu

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Defaults for the zero values of Config.
const (
	DefaultMemoryMB = 1024
	DefaultCPUs     = 1
	DefaultBinary   = "qemu-system-x86_64"
)

// AgentPortName is the name of the virtio-serial port that ksu-agent
// serves. udev links it as /dev/virtio-ports/org.ksu.agent in the guest.
const AgentPortName = "org.ksu.agent"

// Config describes one guest.
type Config struct {
	// Kernel is the bzImage to boot (QEMU's -kernel). Required.
	Kernel string
	// Initrd is the initramfs (-initrd); empty boots without one.
	Initrd string
	// Disk is a raw disk image that appears as /dev/vda in the guest. The guest
	// writes to a qcow2 overlay in WorkDir, so the image never changes and
	// several guests can share it. Empty means no disk.
	Disk string
	// Cmdline is the kernel command line. "console=ttyS0" and "panic=-1"
	// are appended unless it sets console= or panic= itself, so the
	// console reaches the host and a panic ends QEMU at once, and so is
	// "no_timer_check" (see kernelCmdline).
	Cmdline string
	// MemoryMB is the guest RAM in MiB (DefaultMemoryMB if zero).
	MemoryMB int
	// CPUs is the number of virtual CPUs (DefaultCPUs if zero).
	CPUs int
	// WorkDir receives console.log, qemu.log (QEMU's own stderr), the
	// disk overlay and, when the path is short enough, the sockets.
	// Required; StartT uses t.TempDir() when it is empty.
	WorkDir string
	// Forwards are TCP ports forwarded from 127.0.0.1 on the host to the
	// guest through QEMU user networking.
	Forwards []Forward
	// ExtraArgs are appended to the QEMU command line.
	ExtraArgs []string
	// Binary is the QEMU executable (DefaultBinary if empty).
	Binary string
}

// Forward forwards TCP connections to 127.0.0.1:HostPort on the host to
// GuestPort in the guest. HostPort 0 picks a free port when the guest
// starts; Guest.HostPort returns it.
type Forward struct {
	HostPort  int
	GuestPort int
}

func (c Config) withDefaults() Config {
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.Binary == "" {
		c.Binary = DefaultBinary
	}
	c.Forwards = append([]Forward(nil), c.Forwards...)
	return c
}

func (c Config) validate() error {
	if c.Kernel == "" {
		return errors.New("invalid config: Kernel is empty")
	}
	if c.WorkDir == "" {
		return errors.New("invalid config: WorkDir is empty")
	}
	for _, path := range []string{c.Kernel, c.Initrd, c.Disk} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	for _, f := range c.Forwards {
		if f.GuestPort <= 0 || f.GuestPort > 65535 || f.HostPort < 0 || f.HostPort > 65535 {
			return fmt.Errorf("invalid config: forward %d->%d: port out of range", f.HostPort, f.GuestPort)
		}
	}
	return nil
}

// kernelCmdline appends console=ttyS0, panic=-1 and no_timer_check to
// cmdline unless it already has them. no_timer_check skips the kernel's
// check that the IO-APIC timer ticks during early boot: under software
// emulation on a busy host the check can miss its window, and the kernel
// then panics with "IO-APIC + timer doesn't work!".
func kernelCmdline(cmdline string) string {
	params := strings.Fields(cmdline)
	has := func(key string) bool {
		for _, p := range params {
			if strings.HasPrefix(p, key+"=") {
				return true
			}
		}
		return false
	}
	if !has("console") {
		params = append(params, "console=ttyS0")
	}
	if !has("panic") {
		params = append(params, "panic=-1")
	}
	if !slices.Contains(params, "no_timer_check") {
		params = append(params, "no_timer_check")
	}
	return strings.Join(params, " ")
}

// pickFreePorts replaces HostPort 0 with a port that is free on 127.0.0.1.
//
// Limitation: the port is free when picked but not reserved, so another
// process can take it before QEMU binds it and QEMU then fails to start
// with "could not set up host forwarding rule". Passing listening sockets
// to QEMU would lift this, but user networking cannot take an fd.
func pickFreePorts(forwards []Forward) error {
	for i := range forwards {
		if forwards[i].HostPort != 0 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("pick a free port for guest port %d: %w", forwards[i].GuestPort, err)
		}
		forwards[i].HostPort = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	return nil
}

// paths are the files of one guest.
type paths struct {
	overlay string // empty without a disk
	agent   string // agent socket
	qmp     string // QMP socket
}

// args returns the QEMU command line for cfg, with HostPorts already
// picked.
func args(cfg Config, accel string, p paths) []string {
	a := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-m", fmt.Sprint(cfg.MemoryMB), "-smp", fmt.Sprint(cfg.CPUs),
		"-kernel", cfg.Kernel, "-append", kernelCmdline(cfg.Cmdline),
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=" + p.agent + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" + AgentPortName,
		"-qmp", "unix:" + p.qmp + ",server=on,wait=off",
	}
	a = append(a, accelArgs(accel)...)
	if cfg.Initrd != "" {
		a = append(a, "-initrd", cfg.Initrd)
	}
	if p.overlay != "" {
		// cache=unsafe ignores the guest's flushes: the overlay is thrown
		// away with the guest, and flushes are slow under emulation.
		a = append(a, "-drive", "file="+p.overlay+",format=qcow2,if=virtio,cache=unsafe")
	}
	a = append(a, netArgs(cfg.Forwards)...)
	return append(a, cfg.ExtraArgs...)
}

// netArgs gives the guest one virtio NIC on QEMU user networking.
// restrict=on keeps the guest from reaching the host or any other network;
// the forwards still work.
func netArgs(forwards []Forward) []string {
	netdev := "user,id=net0,restrict=on"
	for _, f := range forwards {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
	}
	return []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"}
}

// socketDir returns the directory for the guest's unix sockets. A unix
// socket path must fit in 108 bytes, and a deep t.TempDir() can exceed that.
// Then the sockets go to a new directory under os.TempDir(), and own is
// true.
func socketDir(workDir string) (dir string, own bool, err error) {
	const longest = len("/agent.sock")
	if abs, err := filepath.Abs(workDir); err == nil && len(abs)+longest < 100 {
		return abs, false, nil
	}
	dir, err = os.MkdirTemp("", "ksu-qemu-")
	if err != nil {
		return "", false, fmt.Errorf("create socket directory: %w", err)
	}
	return dir, true, nil
}
