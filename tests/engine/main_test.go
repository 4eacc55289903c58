package engine

import (
	"fmt"
	"math"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain marks every descriptor above 2 close-on-exec before any test
// runs. Whatever started the test binary may have leaked some (a pipe of
// the shell or the CI runner), os/exec passes such descriptors on, and a
// tracee holding one would hold a pipe end that the dump rejects.
func TestMain(m *testing.M) {
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintf(os.Stderr, "close_range(3, ~0, CLOSE_RANGE_CLOEXEC): %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
