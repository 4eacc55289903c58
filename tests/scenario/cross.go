package scenario

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/workloads"
)

// GuestXfail returns why a checkpoint and restore is expected to fail
// workload name on release rel, from the desc file installed next to it
// in the guest, or "" when it is expected to pass.
func GuestXfail(ctx context.Context, g *qemu.Guest, name, rel, workDir string) (string, error) {
	data, err := g.Output(ctx, "cat", path.Join(WorkloadDir, name+".desc"))
	if err != nil {
		return "", fmt.Errorf("read desc of workload %s: %w", name, err)
	}
	local := filepath.Join(workDir, name+".desc")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		return "", err
	}
	d, err := workloads.ReadDesc(local)
	if err != nil {
		return "", err
	}
	return d.XfailOn(rel), nil
}
