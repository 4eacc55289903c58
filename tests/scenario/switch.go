package scenario

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/phase"
	"github.com/ksu-project/ksu/qemu"
)

// Boot starts a guest on release rel and waits until its agent answers.
// Each of guestPorts is forwarded from a free port 127.0.0.1:PORT on the
// host, and g.HostPort(guestPort) returns PORT. The caller closes the
// guest.
//
// A kernel that panics before ksu-init starts is booted once more, in a
// subdirectory of workDir: under software emulation the kernel's own code
// patching at boot (int3 over a static key) now and then oopses. A panic
// after ksu-init started is ksu's and is returned.
func Boot(ctx context.Context, im Images, rel, workDir string, guestPorts ...int) (*qemu.Guest, time.Duration, error) {
	g, boot, err := bootOnce(ctx, im, rel, workDir, guestPorts)
	if err == nil || !earlyPanic(g) {
		return g, boot, err
	}
	log.Printf("scenario: %s panicked before ksu-init started (%v); booting it again", rel, err)
	g.Close()
	retryDir := filepath.Join(workDir, "retry")
	if err := os.MkdirAll(retryDir, 0o755); err != nil {
		return nil, 0, err
	}
	return bootOnce(ctx, im, rel, retryDir, guestPorts)
}

// bootOnce boots the guest once. On error it returns the guest, closed,
// when QEMU started, so that its console can be read.
func bootOnce(ctx context.Context, im Images, rel, workDir string, guestPorts []int) (*qemu.Guest, time.Duration, error) {
	cfg := im.GuestConfig(rel, workDir)
	for _, port := range guestPorts {
		cfg.Forwards = append(cfg.Forwards, qemu.Forward{GuestPort: port})
	}
	g, err := qemu.Start(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	info, err := g.WaitAgent(ctx)
	if err != nil {
		g.Close()
		return g, 0, fmt.Errorf("boot %s: %w", rel, err)
	}
	if info.Release != rel {
		g.Close()
		return g, 0, fmt.Errorf("boot %s: guest runs %s", rel, info.Release)
	}
	return g, time.Since(g.StartedAt()), nil
}

// earlyPanic reports whether g's kernel panicked before ksu-init wrote
// its first line.
func earlyPanic(g *qemu.Guest) bool {
	if g == nil {
		return false
	}
	for _, l := range g.Console(0) {
		if strings.Contains(l.Text, "ksu-init: ") {
			return false
		}
		if strings.Contains(l.Text, "Kernel panic - not syncing") {
			return true
		}
	}
	return false
}

// Switch is what one kernel switch took, as the host saw it.
type Switch struct {
	From, To string
	// Phases are the durations that ksu and ksu-init reported in their
	// KSU-PHASE markers, in the order they were printed.
	Phases []phase.Span
	// KexecToInit runs from ksu's last line before the kexec to the
	// first line of ksu-init on the new kernel.
	KexecToInit time.Duration
	// InitToHandoff runs from ksu-init's first line to its handoff
	// marker, just before it executes the real init.
	InitToHandoff time.Duration
	// HandoffToAgent runs from the handoff to the first answer of the
	// guest agent that the real init started.
	HandoffToAgent time.Duration
	// Total runs from starting ksu update to the agent's first answer
	// on the new kernel.
	Total time.Duration
	// Log holds the lines ksu wrote to the kernel log on the old kernel.
	Log []string
	// LogFile is the guest file that received ksu's stdout and stderr,
	// which stops growing when ksu freezes the filesystems before the
	// kexec.
	LogFile string
}

var (
	// markerRE matches the kernel log copy of a marker only: ksu-init
	// also writes each marker to the console directly.
	markerRE   = regexp.MustCompile(`(?:ksu|ksu-init): KSU-PHASE (\w+) done ms=(\d+)`)
	kexecRE    = regexp.MustCompile(`ksu: kexec at `)
	ksuInitRE  = regexp.MustCompile(`ksu-init: `)
	handoffRE  = regexp.MustCompile(`KSU-PHASE handoff done`)
	spawnWait  = 3 * time.Minute
	rebootWait = 5 * time.Minute
)

// ErrUpdateExited is wrapped by the error of UpdateKernel when ksu
// update exited on the old kernel, which it does only when it failed.
var ErrUpdateExited = errors.New("exited on the old kernel")

// fatalRE matches the marker that ksu-init prints before its ksu.onfail=
// action, after which no handoff follows.
var (
	fatalRE          = regexp.MustCompile(`KSU-FATAL `)
	handoffOrFatalRE = regexp.MustCompile(handoffRE.String() + "|" + fatalRE.String())
)

// UpdateKernel runs "ksu update" in the guest to switch it to release to,
// with extra arguments args, and waits until the guest agent answers on
// the new kernel.
func UpdateKernel(ctx context.Context, g *qemu.Guest, to string, args ...string) (Switch, error) {
	argv := append([]string{"/usr/sbin/ksu", "update", "--kernel", "/boot/vmlinuz-" + to, "--yes"}, args...)
	return runUpdate(ctx, g, to, argv)
}

// runUpdate runs the ksu update command line argv in the guest and waits
// until the guest agent responds on the new kernel, whose release to names
// in error messages.
func runUpdate(ctx context.Context, g *qemu.Guest, to string, argv []string) (Switch, error) {
	from, err := Uname(ctx, g)
	if err != nil {
		return Switch{}, err
	}
	s := Switch{From: from}
	start := g.Mark()
	startedAt := time.Now()

	proc, err := g.Spawn(ctx, argv...)
	if err != nil {
		return s, fmt.Errorf("start ksu update: %w", err)
	}
	s.LogFile = proc.Log

	// ksu exits on the old kernel only when the update failed, before
	// the kexec or in it, so its exit ends the waits for the new kernel.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	exited := watchExit(watchCtx, g, proc, "ksu update")

	kexecLine, err := waitLineUnless(ctx, g, start, kexecRE, spawnWait, exited)
	if err != nil {
		return s, fmt.Errorf("wait for ksu to kexec (ksu's log %s: %q): %w", proc.Log, spawnLog(g, proc), err)
	}
	initLine, err := waitLineUnless(ctx, g, kexecLine.Next(), ksuInitRE, rebootWait, exited)
	if err != nil {
		return s, fmt.Errorf("wait for ksu-init on %s (ksu's log %s: %q): %w", to, proc.Log, spawnLog(g, proc), err)
	}
	stopWatch()
	handoff, err := waitLine(ctx, g, initLine.Next(), handoffOrFatalRE, rebootWait)
	if err == nil && fatalRE.MatchString(handoff.Text) {
		err = fmt.Errorf("ksu-init failed: %s", handoff.Text)
	}
	if err != nil {
		return s, fmt.Errorf("wait for ksu-init's handoff on %s: %w", to, err)
	}
	wctx, cancel := context.WithTimeout(ctx, rebootWait)
	defer cancel()
	info, err := g.WaitAgent(wctx)
	if err != nil {
		return s, fmt.Errorf("wait for the guest agent on %s: %w", to, err)
	}

	s.To = info.Release
	s.Total = time.Since(startedAt)
	s.KexecToInit = initLine.At.Sub(kexecLine.At)
	s.InitToHandoff = handoff.At.Sub(initLine.At)
	s.HandoffToAgent = time.Since(handoff.At)
	s.Phases = phasesFrom(g.Console(start))
	for _, l := range g.Console(start) {
		if l.Index > kexecLine.Index {
			break
		}
		if _, text, ok := strings.Cut(l.Text, "ksu: "); ok {
			s.Log = append(s.Log, text)
		}
	}
	return s, nil
}

func waitLine(ctx context.Context, g *qemu.Guest, from qemu.Cursor, re *regexp.Regexp, d time.Duration) (qemu.Line, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return g.WaitConsoleFrom(ctx, from, re)
}

// waitLineUnless waits as waitLine does, but ends early with the error
// that abort delivers.
func waitLineUnless(ctx context.Context, g *qemu.Guest, from qemu.Cursor, re *regexp.Regexp, d time.Duration, abort <-chan error) (qemu.Line, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		line qemu.Line
		err  error
	}
	found := make(chan result, 1)
	go func() {
		line, err := waitLine(ctx, g, from, re, d)
		found <- result{line, err}
	}()
	select {
	case r := <-found:
		return r.line, r.err
	case err := <-abort:
		return qemu.Line{}, err
	}
}

// watchExit returns a channel that receives an error once the guest
// process p has exited. Nothing is sent when ctx ends
// first, or when the guest kernel switches while p runs: the agent that
// watches p is gone then, and its request ends only with ctx.
func watchExit(ctx context.Context, g *qemu.Guest, p qemu.Process, name string) <-chan error {
	exited := make(chan error, 1)
	go func() {
		// tail --pid checks every 0.2 s whether the process still
		// exists, without forking, and exits once it is gone.
		_, err := g.Output(ctx, "tail", "-f", "/dev/null", "--pid", strconv.Itoa(p.PID), "-s", "0.2")
		if err != nil {
			return
		}
		exited <- fmt.Errorf("%s (guest pid %d): %w", name, p.PID, ErrUpdateExited)
	}()
	return exited
}

// spawnLog returns the output of a spawned command, or why it could not
// be read, for error messages.
func spawnLog(g *qemu.Guest, p qemu.Process) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := g.Output(ctx, "tail", "-c", "2000", p.Log)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// phasesFrom collects the KSU-PHASE markers of console lines.
func phasesFrom(lines []qemu.Line) []phase.Span {
	var spans []phase.Span
	for _, l := range lines {
		m := markerRE.FindStringSubmatch(l.Text)
		if m == nil {
			continue
		}
		ms, _ := strconv.Atoi(m[2])
		spans = append(spans, phase.Span{Phase: phase.Name(m[1]), Duration: time.Duration(ms) * time.Millisecond})
	}
	return spans
}

// Uname returns the guest's kernel release.
func Uname(ctx context.Context, g *qemu.Guest) (string, error) {
	out, err := g.Output(ctx, "uname", "-r")
	if err != nil {
		return "", fmt.Errorf("uname -r in the guest: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Report formats a switch as a table of the times the host measured and
// the phase times the guest reported.
func (s Switch) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel switch %s -> %s\n", s.From, s.To)
	for _, l := range s.Log {
		fmt.Fprintf(&b, "  ksu: %s\n", l)
	}
	for _, p := range s.Phases {
		fmt.Fprintf(&b, "  %-26s %8s\n", "phase "+string(p.Phase), p.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  %-26s %8s\n", "kexec until ksu-init", s.KexecToInit.Round(time.Millisecond))
	fmt.Fprintf(&b, "  %-26s %8s\n", "ksu-init until real init", s.InitToHandoff.Round(time.Millisecond))
	fmt.Fprintf(&b, "  %-26s %8s\n", "real init until agent", s.HandoffToAgent.Round(time.Millisecond))
	fmt.Fprintf(&b, "  %-26s %8s\n", "total", s.Total.Round(time.Millisecond))
	return b.String()
}
