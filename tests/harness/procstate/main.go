// Command procstate prints harness.Capture of a process tree as JSON, so
// that a test on the host can capture a tree inside a QEMU guest.
//
// Usage: procstate PID
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/ksu-project/ksu/tests/harness"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: procstate PID")
		os.Exit(2)
	}
	pid, err := strconv.Atoi(os.Args[1])
	if err != nil || pid <= 0 {
		fmt.Fprintf(os.Stderr, "procstate: invalid pid %q\n", os.Args[1])
		os.Exit(2)
	}
	tree, err := harness.Capture("/proc", pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "procstate: %v\n", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(tree); err != nil {
		fmt.Fprintf(os.Stderr, "procstate: write capture: %v\n", err)
		os.Exit(1)
	}
}
