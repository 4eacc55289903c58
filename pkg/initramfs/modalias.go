package initramfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DeviceModaliases returns the modaliases of the devices that sysRoot (a
// sysfs mount, "/sys" on a live system) shows, read from
// bus/*/devices/*/modalias, sorted and without duplicates. A device that
// disappears while it is being read is skipped.
func DeviceModaliases(sysRoot string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(sysRoot, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, fmt.Errorf("list device modaliases in %s: %w", sysRoot, err)
	}
	var aliases []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrInvalid) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read device modalias: %w", err)
		}
		if a := strings.TrimSpace(string(data)); a != "" {
			aliases = append(aliases, a)
		}
	}
	slices.Sort(aliases)
	return slices.Compact(aliases), nil
}
