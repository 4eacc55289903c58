package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	// defaultPortWait covers the virtio modules loading late in boot.
	defaultPortWait = time.Minute
	// hostPoll is how often a read retries while the host side of the port
	// is closed (the port then reads as EOF).
	hostPoll = 200 * time.Millisecond
	// reopenDelay spaces attempts to reopen a port that failed.
	reopenDelay = time.Second

	virtioPortsDir    = "/dev/virtio-ports"
	sysVirtioPortsDir = "/sys/class/virtio-ports"
)

// port is an open virtio-serial port. Reads never return EOF: the port reads
// as EOF while no host is connected, and the agent waits for one instead of
// exiting. A port that fails is reopened.
type port struct {
	path string

	mu       sync.Mutex
	f        *os.File
	failures int
}

// openPort waits up to wait for the port at path to exist and opens it.
func openPort(path string, wait time.Duration) (*port, error) {
	resolved, err := waitForPort(path, wait)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(resolved, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open port: %w", err)
	}
	return &port{path: resolved, f: f}, nil
}

func waitForPort(path string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		resolved, err := resolvePort(path, sysVirtioPortsDir, "/dev")
		if err == nil {
			return resolved, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("wait %s for port %s: %w", wait, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resolvePort returns path if it exists. A missing /dev/virtio-ports/NAME
// (no udev, as in an initramfs) is looked up by NAME in sysDir, where each
// port's directory has a "name" file, and returns the node in devDir.
func resolvePort(path, sysDir, devDir string) (string, error) {
	_, err := os.Stat(path)
	if err == nil || filepath.Dir(path) != virtioPortsDir {
		return path, err
	}
	name := filepath.Base(path)
	entries, err := os.ReadDir(sysDir)
	if err != nil {
		return "", fmt.Errorf("find port %q: %w", name, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dev := filepath.Join(devDir, e.Name())
		if _, err := os.Stat(dev); err != nil {
			return "", fmt.Errorf("find port %q: %w", name, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("find port %q: no such port in %s", name, sysDir)
}

// Read reads from the port, waiting while the host is not connected.
func (p *port) Read(b []byte) (int, error) {
	for {
		n, err := p.file().Read(b)
		if n > 0 {
			return n, nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			time.Sleep(hostPoll)
			continue
		}
		p.reopen(err)
	}
}

// Write writes to the port as currently open.
func (p *port) Write(b []byte) (int, error) {
	return p.file().Write(b)
}

func (p *port) file() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f
}

// reopen replaces the port's file after a read failed with cause. Failures
// are logged the 1st, 2nd, 4th, 8th… time in a row.
func (p *port) reopen(cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures++
	if p.failures&(p.failures-1) == 0 {
		log.Printf("read %s: %v (failure %d in a row); reopening", p.path, cause, p.failures)
	}
	time.Sleep(reopenDelay)
	f, err := os.OpenFile(p.path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	p.f.Close()
	p.f = f
	p.failures = 0
}
