// Command ksu is the operator's tool on the running system: it checks
// whether processes can be preserved and updates the kernel under them.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ksu: not implemented yet")
	os.Exit(2)
}
