// Command demo runs the redis scenario of the TestRedisAcrossUpdate test,
// through the same scenario code. It boots a Debian guest on the old
// test kernel and starts a redis-server of about 137 MiB there. A client
// on the host holds one TCP connection to it through QEMU's port
// forward while ksu update switches the guest to the new kernel. The
// demo prints what each phase took, ksu-init's report and the pause the
// client saw. Then it checks on the same connection that the data, the
// PID and the last write are still there. Run it with ./build.sh demo,
// which builds the images first.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ksu-project/ksu/tests/scenario"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	im, err := scenario.FindImages()
	if err != nil {
		return err
	}
	workDir, err := os.MkdirTemp("", "ksu-demo-")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	fmt.Printf("booting a guest on %s (console: %s/console.log)\n", im.OldRelease, workDir)
	g, boot, err := scenario.Boot(ctx, im, im.OldRelease, workDir, scenario.RedisPort)
	if err != nil {
		return err
	}
	defer g.Close()
	fmt.Printf("guest up in %s (accel %s)\n", boot.Round(time.Millisecond), g.Accel())

	s, err := scenario.StartRedisSession(ctx, g, scenario.RedisKeys, scenario.RedisValueSize)
	if err != nil {
		return err
	}
	defer s.Client.Close()
	if err := s.SetMarker("written just before the update"); err != nil {
		return err
	}
	fmt.Printf("redis-server pid %d: %d keys, used_memory %.1f MiB, DEBUG DIGEST %s\n",
		s.Server.PID, s.Before.DBSize, float64(s.UsedMemory)/(1<<20), s.Before.Digest)
	fmt.Printf("host client on one connection, local address %s, sends PING every 50 ms\n", s.Client.LocalAddr())

	fmt.Printf("running: ksu update --kernel /boot/vmlinuz-%s --pid %d --yes\n", im.NewRelease, s.Server.PID)
	u, err := scenario.UpdateRedis(ctx, g, s, im.NewRelease)
	if err != nil {
		return err
	}
	fmt.Print(u.Summary())
	if u.Switch.To != im.NewRelease {
		return fmt.Errorf("guest runs %s after the update, want %s", u.Switch.To, im.NewRelease)
	}
	if err := s.CheckPreserved(ctx, g); err != nil {
		return fmt.Errorf("after the update, on the client's connection: %w", err)
	}
	fmt.Printf("on the same connection: redis-server pid %d, %d keys, same DEBUG DIGEST, the last write is there and a new one works\n",
		s.Before.PID, s.Before.DBSize)
	return nil
}
