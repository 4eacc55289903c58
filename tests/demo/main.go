// Command demo boots a Debian guest on the old test kernel and switches it
// to the new one with ksu update, printing what each phase took. Run it
// with ./build.sh demo, which builds the images first.
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
	g, boot, err := scenario.Boot(ctx, im, im.OldRelease, workDir)
	if err != nil {
		return err
	}
	defer g.Close()
	fmt.Printf("guest up in %s (accel %s)\n", boot.Round(time.Millisecond), g.Accel())

	fmt.Printf("running: ksu update --kernel /boot/vmlinuz-%s --yes\n", im.NewRelease)
	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease)
	if err != nil {
		return err
	}
	fmt.Print(s.Report())
	if s.To != im.NewRelease {
		return fmt.Errorf("guest runs %s after the switch, want %s", s.To, im.NewRelease)
	}
	fmt.Println("the guest runs the new kernel; processes are not preserved yet")
	return nil
}
