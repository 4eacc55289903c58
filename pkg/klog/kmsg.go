package klog

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Syslog severity levels, the number in the "<N>" prefix of a /dev/kmsg
// record (syslog(2)).
const (
	LevelCrit    = 2
	LevelErr     = 3
	LevelWarning = 4
	LevelNotice  = 5
	LevelInfo    = 6
	LevelDebug   = 7
)

// Paths of the kernel interfaces that OpenKernelLog uses.
const (
	DevKmsg       = "/dev/kmsg"
	DevConsole    = "/dev/console"
	PrintkDevkmsg = "/proc/sys/kernel/printk_devkmsg"
	Printk        = "/proc/sys/kernel/printk"
)

// maxRecord is the longest message text written to /dev/kmsg in one record.
// The kernel rejects a write of more than about 1 KiB with EINVAL, and the
// exact limit depends on the version (devkmsg_write in
// kernel/printk/printk.c). So longer lines are split, with room left for
// the prefix.
const maxRecord = 900

// maxPending bounds the lines kept for the kernel log before it is open.
const maxPending = 64

// Kmsg is a Logger for a process that runs as PID 1. Each message goes to
// the kernel log as a "<level>ident: message" record. It also goes to the
// console as "ident: message", unless the kernel prints that record on
// the console itself (see SetConsoleLevel).
//
// Until AttachKernelLog or OpenKernelLog succeeds, messages go to the console
// only and the last maxPending of them are kept, then written to the kernel
// log on attach, so dmesg still shows the earliest stage.
type Kmsg struct {
	ident string

	mu      sync.Mutex
	console io.Writer
	kmsg    io.Writer
	// consoleLevel is the kernel's console_loglevel once known: records
	// of a lower level reach the console through the kernel, so they are
	// not written to it a second time. Zero means unknown.
	consoleLevel int
	pending      []pendingLine
	dropped      int
	// restoreRatelimit puts printk_devkmsg back as OpenKernelLog found it.
	restoreRatelimit func() error
}

type pendingLine struct {
	level int
	text  string
}

// NewKmsg returns a Kmsg that writes to console until a kernel log is
// attached. console is usually /dev/console or the standard output that the
// kernel opened on it for init.
func NewKmsg(ident string, console io.Writer) *Kmsg {
	return &Kmsg{ident: ident, console: console}
}

// OpenKmsg returns a Kmsg writing to /dev/console and /dev/kmsg. If
// /dev/kmsg cannot be opened, it writes to the console only and the error
// is logged there.
func OpenKmsg(ident string) *Kmsg {
	var console io.Writer = os.Stderr
	if f, err := os.OpenFile(DevConsole, os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		console = f
	}
	k := NewKmsg(ident, console)
	if err := k.OpenKernelLog(); err != nil {
		k.Logf(LevelWarning, "kernel log unavailable, logging to the console only: %v", err)
	}
	return k
}

// OpenKernelLog turns off the kernel's rate limit on /dev/kmsg writes
// with LiftRatelimit (so a burst of lines from PID 1 is not dropped),
// then opens /dev/kmsg and attaches it. It needs /proc and /dev mounted.
// A failure to lift the rate limit is logged and not returned, because
// the kernel log still works with the rate limit on. RestoreRatelimit
// puts the setting back.
func (k *Kmsg) OpenKernelLog() error {
	restore, err := LiftRatelimit(PrintkDevkmsg)
	if err != nil {
		k.Logf(LevelWarning, "%v; the kernel may drop lines", err)
	}
	k.mu.Lock()
	k.restoreRatelimit = restore
	k.mu.Unlock()
	f, err := os.OpenFile(DevKmsg, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open kernel log: %w", err)
	}
	level := 0
	if data, err := os.ReadFile(Printk); err == nil {
		level = parseConsoleLevel(string(data))
	}
	k.attachWithoutEcho(f, level)
	k.SetConsoleLevel(level)
	return nil
}

// attachWithoutEcho attaches w as AttachKernelLog does. The kept lines
// are on the console already, and the kernel would print the ones below
// consoleLevel there a second time. So it turns the kernel's console
// output off while it writes them (SYSLOG_ACTION_CONSOLE_OFF, syslog(2)).
// The console skips the records it prints meanwhile, so any kernel
// message it prints in that window reaches the log only.
//
// NOTE: a record that the console prints only after the output is back
// on, such as one left to another CPU that holds the console, still
// shows twice.
func (k *Kmsg) attachWithoutEcho(w io.Writer, consoleLevel int) {
	if !k.keptEchoed(consoleLevel) {
		k.AttachKernelLog(w)
		return
	}
	if _, err := unix.Klogctl(unix.SYSLOG_ACTION_CONSOLE_OFF, nil); err != nil {
		k.AttachKernelLog(w)
		k.Logf(LevelWarning, "turn off the kernel's console output: %v; the early lines show twice", err)
		return
	}
	k.AttachKernelLog(w)
	if _, err := unix.Klogctl(unix.SYSLOG_ACTION_CONSOLE_ON, nil); err != nil {
		k.Logf(LevelWarning, "turn the kernel's console output back on: %v", err)
	}
}

// keptEchoed reports whether the kernel would print any kept line on the
// console when its console_loglevel is consoleLevel.
func (k *Kmsg) keptEchoed(consoleLevel int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pending {
		if p.level < consoleLevel {
			return true
		}
	}
	return false
}

// RestoreRatelimit puts printk_devkmsg back to the setting that
// OpenKernelLog found, so that the system that runs next gets the
// kernel's own rate limit. It does nothing if OpenKernelLog changed
// nothing.
func (k *Kmsg) RestoreRatelimit() error {
	k.mu.Lock()
	restore := k.restoreRatelimit
	k.restoreRatelimit = nil
	k.mu.Unlock()
	if restore == nil {
		return nil
	}
	return restore()
}

// SetConsoleLevel records the kernel's console_loglevel, the first field
// of /proc/sys/kernel/printk. From then on, a message the kernel prints on
// the console itself is only written to the kernel log.
func (k *Kmsg) SetConsoleLevel(level int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.consoleLevel = level
}

// parseConsoleLevel returns the first number of /proc/sys/kernel/printk,
// or 0 if there is none.
func parseConsoleLevel(printk string) int {
	fields := strings.Fields(printk)
	if len(fields) == 0 {
		return 0
	}
	level, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return level
}

// AttachKernelLog makes w the kernel log, then writes to it the lines that
// were logged before, noting how many were dropped because there were more
// than maxPending.
func (k *Kmsg) AttachKernelLog(w io.Writer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kmsg = w
	if k.dropped > 0 {
		k.writeKmsg(LevelWarning, fmt.Sprintf("%d early lines were dropped before the kernel log was open", k.dropped))
	}
	for _, p := range k.pending {
		k.writeKmsg(p.level, p.text)
	}
	k.pending, k.dropped = nil, 0
}

// Printf logs a message at LevelInfo.
func (k *Kmsg) Printf(format string, args ...any) {
	k.Logf(LevelInfo, format, args...)
}

// Logf logs a message at the given syslog level.
func (k *Kmsg) Logf(level int, format string, args ...any) {
	text := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.kernelEchoes(level) {
		k.writeConsole(k.ident + ": " + text + "\n")
	}
	k.writeKmsg(level, text)
}

// kernelEchoes reports whether the kernel prints a record of level on the
// console by itself.
//
// Preconditions: k.mu is held.
func (k *Kmsg) kernelEchoes(level int) bool {
	return k.kmsg != nil && level < k.consoleLevel
}

// Mark writes a marker line that tests and operators search the console
// for. The kernel log gets it as a LevelNotice record, which the kernel
// prints on the console as "ident: marker". When the kernel would not
// print it, the console gets the marker directly, with no ident prefix.
func (k *Kmsg) Mark(format string, args ...any) {
	text := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.kernelEchoes(LevelNotice) {
		k.writeConsole(text + "\n")
	}
	k.writeKmsg(LevelNotice, text)
}

// writeConsole writes s to the console, dropping errors: the console is
// the last resort, so there is nowhere to report them.
//
// Preconditions: k.mu is held.
func (k *Kmsg) writeConsole(s string) {
	if k.console != nil {
		_, _ = io.WriteString(k.console, s)
	}
}

// writeKmsg writes text to the kernel log as one record per line, splitting
// lines longer than maxRecord, or keeps it for later if no kernel log is
// attached.
//
// Preconditions: k.mu is held.
func (k *Kmsg) writeKmsg(level int, text string) {
	if k.kmsg == nil {
		k.keep(level, text)
		return
	}
	for _, line := range strings.Split(text, "\n") {
		for _, rec := range splitRecord(line, maxRecord) {
			// Each write is one record. A failed write is not reported
			// again, but it reaches the console if the kernel was to
			// print it there.
			_, err := fmt.Fprintf(k.kmsg, "<%d>%s: %s\n", level, k.ident, rec)
			if err != nil && k.kernelEchoes(level) {
				k.writeConsole(k.ident + ": " + rec + "\n")
			}
		}
	}
}

// keep stores a line for AttachKernelLog, dropping the oldest beyond
// maxPending.
//
// Preconditions: k.mu is held.
func (k *Kmsg) keep(level int, text string) {
	if len(k.pending) == maxPending {
		k.pending = k.pending[1:]
		k.dropped++
	}
	k.pending = append(k.pending, pendingLine{level: level, text: text})
}

// splitRecord cuts s into pieces of at most n bytes, never inside a UTF-8
// sequence. An empty s gives one empty piece.
func splitRecord(s string, n int) []string {
	var out []string
	for len(s) > n {
		cut := n
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = n
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	return append(out, s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
