// Command gothreads is a workload for the Go runtime. Its state is
// several OS threads locked to goroutines, a thread blocked in a raw
// read(2), a ticker and a clock sampler. It also has a garbage-collected
// heap with known content, a buffered channel with queued values and a
// thousand parked goroutines.
//
// Like the C workloads it prints READY, waits for SIGUSR2, checks its
// state and prints PASS or "FAIL: <what differed>". After the check it
// forces a garbage collection, which needs the runtime's own signals and
// threads to work in the restored process.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	lockedThreads = 4
	parked        = 1000
	heapSize      = 64 << 20
	queued        = 100
	checkTimeout  = 5 * time.Second
)

// failures collects what differed; goroutines add to it concurrently.
type failures struct {
	mu   sync.Mutex
	msgs []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func (f *failures) report() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) == 0 {
		fmt.Println("PASS")
		return 0
	}
	fmt.Printf("FAIL: %s\n", strings.Join(f.msgs, "; "))
	return 1
}

// pattern returns n bytes that depend on seed and each byte's position.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i>>8) ^ seed
	}
	return b
}

// workload is the state built before READY.
type workload struct {
	fail     failures
	wake     chan struct{}
	done     sync.WaitGroup
	pipeR    int
	pipeW    int
	ticks    atomic.Int64
	samples  atomic.Int64
	stop     atomic.Bool
	heap     []byte
	table    map[int]string
	queue    chan int
	released chan struct{}
}

// lockedThread keeps one OS thread and checks that its thread id and stack data survive.
func (w *workload) lockedThread(idx int, ready chan<- struct{}) {
	defer w.done.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	local := pattern(4096, byte(idx))
	ready <- struct{}{}
	<-w.wake
	if got := unix.Gettid(); got != tid {
		w.fail.add("locked thread %d: gettid() = %d, want %d", idx, got, tid)
	}
	if !bytes.Equal(local, pattern(4096, byte(idx))) {
		w.fail.add("locked thread %d: stack data changed", idx)
	}
}

// blockedReader sits in read(2) on a blocking pipe, outside the Go poller.
func (w *workload) blockedReader(ready chan<- struct{}) {
	defer w.done.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 8)
	ready <- struct{}{}
	n, err := unix.Read(w.pipeR, buf)
	for err == unix.EINTR {
		n, err = unix.Read(w.pipeR, buf)
	}
	if err != nil || string(buf[:n]) != "wake" {
		w.fail.add("blocked reader: read = %q, %v, want \"wake\"", buf[:n], err)
	}
}

func (w *workload) ticker() {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !w.stop.Load() {
		<-t.C
		w.ticks.Add(1)
	}
}

// sampler fails if the monotonic clock, as time.Now or clock_gettime reads it, goes back.
func (w *workload) sampler() {
	prev := time.Now()
	var prevTS unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &prevTS)
	for !w.stop.Load() {
		now := time.Now()
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		if now.Before(prev) {
			w.fail.add("time.Now went back by %v", prev.Sub(now))
		}
		if ts.Nano() < prevTS.Nano() {
			w.fail.add("CLOCK_MONOTONIC went back from %d to %d", prevTS.Nano(), ts.Nano())
		}
		prev, prevTS = now, ts
		w.samples.Add(1)
		time.Sleep(time.Millisecond)
	}
}

func (w *workload) build() error {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	w.pipeR, w.pipeW = p[0], p[1]

	w.heap = pattern(heapSize, 0x5a)
	w.table = make(map[int]string, 10000)
	for i := range 10000 {
		w.table[i] = fmt.Sprintf("value-%d", i)
	}
	w.queue = make(chan int, queued)
	for i := range queued {
		w.queue <- i
	}

	ready := make(chan struct{})
	for i := range lockedThreads {
		w.done.Add(1)
		go w.lockedThread(i, ready)
	}
	w.done.Add(1)
	go w.blockedReader(ready)
	for range lockedThreads + 1 {
		<-ready
	}

	for range parked {
		go func() { <-w.released }()
	}
	go w.ticker()
	go w.sampler()
	return nil
}

func (w *workload) checkHeap(when string) {
	if !bytes.Equal(w.heap, pattern(heapSize, 0x5a)) {
		w.fail.add("%s: heap slice changed", when)
	}
	for i := range 10000 {
		if got := w.table[i]; got != fmt.Sprintf("value-%d", i) {
			w.fail.add("%s: map[%d] = %q", when, i, got)
			break
		}
	}
}

func (w *workload) checkQueue() {
	for i := range queued {
		select {
		case got := <-w.queue:
			if got != i {
				w.fail.add("channel value %d = %d", i, got)
			}
		default:
			w.fail.add("channel holds %d values, want %d", i, queued)
			return
		}
	}
}

// checkProgress checks that the ticker and the sampler still run.
func (w *workload) checkProgress() {
	ticks, samples := w.ticks.Load(), w.samples.Load()
	deadline := time.Now().Add(checkTimeout)
	for time.Now().Before(deadline) && (w.ticks.Load() < ticks+5 || w.samples.Load() < samples+5) {
		time.Sleep(10 * time.Millisecond)
	}
	if w.ticks.Load() < ticks+5 || w.samples.Load() < samples+5 {
		w.fail.add("ticker or sampler stopped: %d ticks, %d samples in %v",
			w.ticks.Load()-ticks, w.samples.Load()-samples, checkTimeout)
	}
	w.stop.Store(true)
}

// wakeAll releases every waiting goroutine and waits for the threads to finish their checks.
func (w *workload) wakeAll() {
	close(w.wake)
	close(w.released)
	if _, err := unix.Write(w.pipeW, []byte("wake")); err != nil {
		w.fail.add("write wake pipe: %v", err)
	}
	finished := make(chan struct{})
	go func() { w.done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(checkTimeout):
		w.fail.add("threads did not finish in %v", checkTimeout)
	}
}

func main() {
	check := make(chan os.Signal, 1)
	signal.Notify(check, unix.SIGUSR2)
	w := &workload{wake: make(chan struct{}), released: make(chan struct{})}
	if err := w.build(); err != nil {
		fmt.Printf("FAIL: setup: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("READY")
	<-check
	w.checkProgress()
	w.wakeAll()
	w.checkQueue()
	w.checkHeap("before GC")
	runtime.GC()
	w.checkHeap("after GC")
	os.Exit(w.fail.report())
}
