package dump

import (
	"os"
	"testing"
)

// TestFDClosed checks fdClosed on a descriptor of the test process
// while it is open and after it is closed, as a running process may
// close one during ksu check.
func TestFDClosed(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	pid := os.Getpid()
	if fdClosed(pid, fd) {
		t.Errorf("fdClosed(%d, %d) = true for an open descriptor, want false", pid, fd)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if !fdClosed(pid, fd) {
		t.Errorf("fdClosed(%d, %d) = false after close, want true", pid, fd)
	}
	if r := checkFD(pid, fd); r == nil {
		t.Errorf("checkFD(%d, %d) = nil for a closed descriptor, want a rejection that checkFDs drops", pid, fd)
	}
}
