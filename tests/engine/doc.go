// Package engine holds host-side integration tests of the checkpoint and
// restore engine (pkg/dump and pkg/restore). They dump processes the
// test starts, kill them and restore them on the running kernel with
// the same PIDs. They need root, and gcc for the C tracees.
package engine
