package dump

// Check lists every object of process pid that Dump would reject and that
// /proc shows without stopping the process: its state, its root, its
// mappings and its fds. It reads /proc only and traces nothing, so ksu
// check can run it on a service in production.
//
// A dump rejects a few more objects, found only once the tree is frozen:
// a pipe whose other end is outside the tree, and descriptors in flight
// (SCM_RIGHTS) in a Unix socket's queue.
func Check(pid int) []*RejectError {
	return check(pid)
}
