package main

import "github.com/ksu-project/ksu/pkg/klog"

// liftKmsgRatelimit lifts the kernel's rate limit on /dev/kmsg for the
// switch, whose log lines come faster than the 10 per 5 seconds that the
// kernel keeps by default, and returns the function that puts it back
// when update returns. After the kexec, the new kernel has its own
// setting.
func liftKmsgRatelimit(log *switchLog) (restore func()) {
	undo, err := klog.LiftRatelimit(klog.PrintkDevkmsg)
	if err != nil {
		log.Printf("the kernel log may drop lines of this update: %v", err)
	}
	return func() {
		if err := undo(); err != nil {
			log.Printf("%v", err)
		}
	}
}
