// Command ksu-agent runs commands inside a test guest on behalf of the host.
//
// It reads requests from a virtio-serial port, runs them, and writes the
// results back; the protocol is described in
// github.com/ksu-project/ksu/qemu/internal/agent. The guest image installs it
// as /usr/local/sbin/ksu-agent and systemd starts it as
//
//	ksu-agent --port /dev/virtio-ports/org.ksu.agent
//
// Build it static (CGO_ENABLED=0) so it runs on any guest userspace and in an
// initramfs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ksu-project/ksu/qemu/internal/agent"
)

func main() {
	portPath := flag.String("port", "/dev/virtio-ports/org.ksu.agent",
		"virtio-serial port to serve; a missing /dev/virtio-ports/NAME is looked up by NAME in sysfs")
	spawnDir := flag.String("spawn-dir", "/var/log/ksu-agent",
		"directory for the output files of spawned commands that name none")
	maxRunning := flag.Int("max-running", agent.DefaultMaxRunning,
		"number of commands run at once; further requests are rejected as busy")
	wait := flag.Duration("wait", defaultPortWait, "how long to wait for the port to appear")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("ksu-agent: ")
	if err := serve(*portPath, *spawnDir, *maxRunning, *wait); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func serve(portPath, spawnDir string, maxRunning int, wait time.Duration) error {
	srv, err := agent.NewServer(spawnDir, maxRunning)
	if err != nil {
		return err
	}
	srv.Logf = log.Printf
	p, err := openPort(portPath, wait)
	if err != nil {
		return err
	}
	info := srv.Info()
	log.Printf("serving %s: session %s, pid %d, kernel %s", p.path, info.Session, info.PID, info.Release)
	if err := srv.Serve(context.Background(), p, p); err != nil {
		return fmt.Errorf("serve %s: %w", p.path, err)
	}
	return nil
}
