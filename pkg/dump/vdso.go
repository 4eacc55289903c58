package dump

import (
	"fmt"
	"os"

	"github.com/ksu-project/ksu/pkg/procfs"
	"github.com/ksu-project/ksu/pkg/vdso"
)

// readVDSO returns the running kernel's vDSO image for Meta.VDSO, or nil
// when the kernel maps none (vdso=0 on its command line). The dumper's
// own mapping is read: every process of one boot maps the same image.
func readVDSO() ([]byte, error) {
	maps, err := procfs.ReadMaps(procRoot, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("read vDSO: %w", err)
	}
	for _, m := range maps {
		if m.Path == "[vdso]" {
			data, _, err := vdso.ReadSelf()
			return data, err
		}
	}
	return nil, nil
}
