package dump

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/procfs"
)

func TestEventFDSemaphoreProbe(t *testing.T) {
	for _, tt := range []struct {
		count     uint64
		semaphore bool
	}{
		{0, false}, {1, false}, {2, false}, {7, false},
		{0, true}, {1, true}, {2, true}, {7, true},
	} {
		t.Run(fmt.Sprintf("count %d semaphore %v", tt.count, tt.semaphore), func(t *testing.T) {
			flags := unix.EFD_CLOEXEC
			if tt.semaphore {
				flags |= unix.EFD_SEMAPHORE
			}
			fd, err := unix.Eventfd(uint(tt.count), flags)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)

			got, err := eventfdSemaphore(os.Getpid(), fd, tt.count)
			if err != nil {
				t.Fatalf("eventfdSemaphore(fd %d, count %d) = %v", fd, tt.count, err)
			}
			if got != tt.semaphore {
				t.Errorf("eventfdSemaphore(fd %d, count %d) = %v, want %v", fd, tt.count, got, tt.semaphore)
			}
			info, err := procfs.ReadFDInfo("/proc", os.Getpid(), fd)
			if err != nil {
				t.Fatal(err)
			}
			if info.Eventfd == nil || info.Eventfd.Count != tt.count {
				t.Errorf("eventfd count after the probe = %+v, want %d", info.Eventfd, tt.count)
			}
		})
	}
}
