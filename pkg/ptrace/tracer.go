package ptrace

import (
	"errors"
	"runtime"
	"sync"
	"time"
)

// DefaultWaitTimeout bounds how long a Tracer waits for one stop of one
// thread.
const DefaultWaitTimeout = 10 * time.Second

// ErrClosed is returned by the methods of a closed Tracer.
var ErrClosed = errors.New("ptrace tracer closed")

// Tracer attaches to threads and serves every request for them on one
// locked OS thread.
type Tracer struct {
	requests chan request
	quit     chan struct{}
	done     chan struct{}
	close    sync.Once

	// The fields below belong to the tracer goroutine.
	procRoot    string
	waitTimeout time.Duration
	threads     map[int]*thread
	// sites maps a process id to the address of a syscall instruction
	// in that process.
	sites map[int]uintptr
	// xstateSize is the size of the NT_X86_XSTATE register set, 0 until
	// the first read measures it.
	xstateSize int
	// forcePatch makes Syscall patch an instruction even when the
	// process has one already; tests use it to cover that path.
	forcePatch bool
	// journal learns about every injected call (WithJournal).
	journal Journal
	// keepStopped are the processes that GroupStop keeps in a
	// group-stop.
	keepStopped map[int]bool
}

// thread is the tracer's record of one seized thread.
type thread struct {
	tid, tgid int
	// stopped is true while the thread is in a ptrace stop that the
	// tracer has collected with wait; stop is that stop.
	stopped bool
	stop    Stop
}

type request struct {
	fn     func() error
	result chan error
}

// Option configures a Tracer.
type Option func(*Tracer)

// WithProcRoot makes the Tracer read thread lists and memory maps under
// dir instead of /proc.
func WithProcRoot(dir string) Option {
	return func(t *Tracer) { t.procRoot = dir }
}

// WithWaitTimeout changes how long the Tracer waits for one stop of one
// thread before it returns an error (DefaultWaitTimeout).
func WithWaitTimeout(d time.Duration) Option {
	return func(t *Tracer) { t.waitTimeout = d }
}

// NewTracer starts a Tracer and its OS thread. Close releases both.
func NewTracer(opts ...Option) *Tracer {
	t := &Tracer{
		requests:    make(chan request),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
		procRoot:    "/proc",
		waitTimeout: DefaultWaitTimeout,
		threads:     make(map[int]*thread),
		sites:       make(map[int]uintptr),
		journal:     noJournal{},
		keepStopped: make(map[int]bool),
	}
	for _, opt := range opts {
		opt(t)
	}
	go t.serve()
	return t
}

// serve runs every request on one OS thread.
func (t *Tracer) serve() {
	// N.B. The goroutine never calls runtime.UnlockOSThread, so the
	// runtime ends the OS thread when serve returns. The kernel then
	// detaches every thread still attached, which is what Close wants.
	runtime.LockOSThread()
	defer close(t.done)
	for {
		select {
		case r := <-t.requests:
			r.result <- r.fn()
		case <-t.quit:
			return
		}
	}
}

// do runs fn on the tracer thread and returns its error.
func (t *Tracer) do(fn func() error) error {
	r := request{fn: fn, result: make(chan error, 1)}
	select {
	case t.requests <- r:
		return <-r.result
	case <-t.done:
		return ErrClosed
	}
}

// Close detaches from every thread still attached and ends the tracer's
// OS thread. It returns the first detach error; the kernel detaches the
// remaining threads when the OS thread ends in any case.
func (t *Tracer) Close() error {
	err := ErrClosed
	t.close.Do(func() {
		err = t.do(t.detachAll)
		close(t.quit)
		<-t.done
	})
	return err
}
