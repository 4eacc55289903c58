package ptrace

import "reflect"

// counterAddr returns the address of spinCounter in this process. The
// helper and the test run the same binary, but it is position
// independent, so the helper prints the address it uses.
func counterAddr() uintptr {
	return reflect.ValueOf(&spinCounter).Pointer()
}
