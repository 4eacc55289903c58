package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/ksu-project/ksu/pkg/initramfs"
	"github.com/ksu-project/ksu/pkg/snapshot"
	"github.com/ksu-project/ksu/qemu"
)

// SnapshotFiles are the files of a snapshot archive before they are
// packed: the encoded header and the payload parts, in order. Tests damage
// them to check how ksu-init handles a bad snapshot.
type SnapshotFiles struct {
	Header []byte   // nil leaves the header file out
	Parts  [][]byte // contents of snapshot.000, snapshot.001, ...
}

// NewSnapshotFiles returns the files of a consistent archive that carries
// payload in parts of partSize bytes, with hdr's Size and KernelRelease.
// The payload need not be a snapshot stream: the archive checks only its
// length and CRC-32C.
func NewSnapshotFiles(hdr snapshot.ArchiveHeader, payload []byte, partSize int) (SnapshotFiles, error) {
	var files SnapshotFiles
	for off := 0; off < len(payload) || len(files.Parts) == 0; off += partSize {
		files.Parts = append(files.Parts, payload[off:min(off+partSize, len(payload))])
	}
	hdr.Version = snapshot.ArchiveVersion
	hdr.CompressedSize = uint64(len(payload))
	hdr.PartSize = uint64(partSize)
	hdr.Parts = uint32(len(files.Parts))
	hdr.Checksum = crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli))
	b, err := hdr.MarshalBinary()
	if err != nil {
		return files, fmt.Errorf("encode archive header %+v: %w", hdr, err)
	}
	files.Header = b
	return files, nil
}

// CPIO packs the files as a newc archive in initramfs.SnapshotDir, as
// ksu update appends it to the initramfs.
func (f SnapshotFiles) CPIO() ([]byte, error) {
	dir := strings.TrimPrefix(initramfs.SnapshotDir, "/")
	recs := []cpio.Record{cpio.Directory(dir, 0o700)}
	for i, p := range f.Parts {
		recs = append(recs, cpio.StaticFile(path.Join(dir, snapshot.PartName(i)), string(p), 0o600))
	}
	if f.Header != nil {
		recs = append(recs, cpio.StaticFile(path.Join(dir, snapshot.HeaderName), string(f.Header), 0o600))
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecords(w, recs); err != nil {
		return nil, fmt.Errorf("write snapshot cpio: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("write snapshot cpio trailer: %w", err)
	}
	return buf.Bytes(), nil
}

// BootWithSnapshot boots release rel directly, with its first-boot
// initramfs followed by the archive, as if ksu update had kexeced into
// it, and waits until the guest agent responds. The caller closes the
// guest; on error the guest, if started, is returned too, for its log.
func BootWithSnapshot(ctx context.Context, im Images, rel, workDir string, archive []byte) (*qemu.Guest, error) {
	initrd := filepath.Join(workDir, "initrd-snapshot.cpio")
	if err := concatFiles(initrd, im.Initrd(rel), archive); err != nil {
		return nil, err
	}
	cfg := im.GuestConfig(rel, workDir)
	cfg.Initrd = initrd
	g, err := qemu.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := g.WaitAgent(ctx); err != nil {
		return g, fmt.Errorf("boot %s with a snapshot archive: %w", rel, err)
	}
	return g, nil
}

// concatFiles writes the file first followed by rest to path.
func concatFiles(path, first string, rest []byte) error {
	src, err := os.Open(first)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy %s to %s: %w", first, path, err)
	}
	if _, err := dst.Write(rest); err != nil {
		dst.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return dst.Close()
}

// ProcessState returns the state letter of process pid in the guest, as
// /proc/PID/stat shows it: R, S, D, T (stopped), t (traced), Z...
func ProcessState(ctx context.Context, g *qemu.Guest, pid int) (byte, error) {
	out, err := g.Output(ctx, "cat", fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in brackets may contain spaces and ")".
	i := bytes.LastIndexByte(out, ')')
	if i < 0 || i+2 >= len(out) {
		return 0, fmt.Errorf("parse /proc/%d/stat: no state after the command name in %q", pid, out)
	}
	return out[i+2], nil
}

// WaitNotStopped polls process pid for at most d until its state is
// neither T (stopped) nor t (traced), and returns the last state seen.
func WaitNotStopped(ctx context.Context, g *qemu.Guest, pid int, d time.Duration) (byte, error) {
	deadline := time.Now().Add(d)
	for {
		state, err := ProcessState(ctx, g, pid)
		if err != nil {
			return 0, err
		}
		if state != 'T' && state != 't' {
			return state, nil
		}
		if time.Now().After(deadline) {
			return state, fmt.Errorf("process %d still in state %c after %v", pid, state, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// CheckRootWritable writes and syncs a file on the guest's root disk
// with a time limit, which fails rather than hangs if the filesystem
// is still frozen.
func CheckRootWritable(ctx context.Context, g *qemu.Guest) error {
	res, err := g.Run(ctx, "timeout", "20", "sh", "-c", "echo probe > /var/tmp/ksu-failsafe-probe && sync -f /var/tmp/ksu-failsafe-probe")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("write to the root disk failed or timed out (exit %d): %s", res.ExitCode, res.Stderr)
	}
	return nil
}

// TreeFailure is a process tree that ksu-init reported as not restored
// in /run/ksu/report.json.
type TreeFailure struct {
	Root   int32   `json:"root"`
	Comm   string  `json:"comm"`
	PIDs   []int32 `json:"pids"`
	Reason string  `json:"reason"`
}

// ReadTreeFailures reads the failures of the guest's restore report with
// the tree they name, if any.
func ReadTreeFailures(ctx context.Context, g *qemu.Guest) ([]TreeFailure, error) {
	out, err := g.Output(ctx, "cat", "/run/ksu/report.json")
	if err != nil {
		return nil, fmt.Errorf("read the restore report: %w", err)
	}
	var r struct {
		Failures []TreeFailure `json:"failures"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("decode the restore report: %w", err)
	}
	return r.Failures, nil
}

// CheckNotRunning checks that process pid of the guest no longer runs
// argv0: the id is free or, once freed, taken by another program.
func CheckNotRunning(ctx context.Context, g *qemu.Guest, pid int, argv0 string) error {
	res, err := g.Run(ctx, "cat", fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return err
	}
	if got, _, _ := strings.Cut(string(res.Stdout), "\x00"); res.ExitCode == 0 && got == argv0 {
		return fmt.Errorf("process %d still runs %s", pid, argv0)
	}
	if state, err := ProcessState(ctx, g, pid); err == nil && state == 'Z' {
		return fmt.Errorf("process %d is a zombie", pid)
	}
	return nil
}

// BallastSource is a C program that holds argv[1] MiB of incompressible
// memory, filled from a xorshift64* generator with a fixed seed, so that
// a snapshot of it is as large compressed as raw. Like ClockSource, it
// prints READY, then every second "clock MONO_NS BOOT_NS". On SIGUSR2 it
// regenerates the sequence, prints PASS if the memory still holds it, or
// FAIL with the first differing offset, and exits.
const BallastSource = `#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t check;
static void on_usr2(int sig) { (void)sig; check = 1; }

static uint64_t next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static long long now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	size_t words = (argc > 1 ? strtoul(argv[1], NULL, 10) : 16) << 17;
	uint64_t *mem = malloc(words * sizeof(uint64_t)), seed = 0x6b7375;
	if (!mem) {
		printf("FAIL: malloc\n");
		return 1;
	}
	for (size_t i = 0; i < words; i++)
		mem[i] = next(&seed);
	signal(SIGUSR2, on_usr2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY\n");
	while (!check) {
		printf("clock %lld %lld\n", now(CLOCK_MONOTONIC), now(CLOCK_BOOTTIME));
		sleep(1);
	}
	seed = 0x6b7375;
	for (size_t i = 0; i < words; i++) {
		if (mem[i] != next(&seed)) {
			printf("FAIL: memory differs at byte %zu\n", i * sizeof(uint64_t));
			return 1;
		}
	}
	printf("PASS\n");
	return 0;
}
`

// LocalClientSource is a C program that connects to 127.0.0.1:argv[1],
// a Redis server, and prints "READY PORT" with the local port of its
// connection. On each SIGUSR1 it sends INCR of the key argv[2] on that
// connection and prints "reply N" with the integer reply. Any error,
// a reply other than an integer, or no reply within 60 s prints
// "FAIL: ..." and exits. It never reconnects, so its replies show that
// the one connection still carries data both ways.
const LocalClientSource = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t requests;
static void on_usr1(int sig) { (void)sig; requests++; }

static int fail(const char *what)
{
	printf("FAIL: %s: %s\n", what, errno ? strerror(errno) : "unexpected data");
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct timeval timeout = {.tv_sec = 60};
	socklen_t len = sizeof(addr);
	char cmd[256], reply[256];
	sigset_t usr1, old;
	int fd, done = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: %s PORT KEY\n", argv[0]);
		return 2;
	}
	snprintf(cmd, sizeof(cmd), "*2\r\n$4\r\nINCR\r\n$%zu\r\n%s\r\n", strlen(argv[2]), argv[2]);
	addr.sin_port = htons(atoi(argv[1]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return fail("connect");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		return fail("set up the socket");
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	signal(SIGUSR1, on_usr1);
	printf("READY %d\n", ntohs(addr.sin_port));
	for (;;) {
		while (done == requests)
			sigsuspend(&old);
		done++;
		errno = 0;
		if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
			return fail("send INCR");
		size_t n = 0;
		while (n < 3 || memcmp(reply + n - 2, "\r\n", 2) != 0) {
			ssize_t r = read(fd, reply + n, sizeof(reply) - 1 - n);
			if (r <= 0 || n + r >= sizeof(reply) - 1) {
				if (r == 0)
					errno = ECONNRESET;
				return fail("read the INCR reply");
			}
			n += r;
		}
		reply[n - 2] = 0;
		if (reply[0] != ':') {
			errno = 0;
			return fail(reply);
		}
		printf("reply %s\n", reply + 1);
	}
}
`

// LocalClient is a LocalClientSource process in the guest, outside the
// preserved trees.
type LocalClient struct {
	Preserved     // the process, though a test does not preserve it
	Port      int // local port of its connection
	Replies   int // replies read so far
}

// StartLocalClient starts the program path, built from
// LocalClientSource, against RedisPort with the key key, which must not
// exist yet. The key counts the client's requests.
func StartLocalClient(ctx context.Context, g *qemu.Guest, name, path, key string) (*LocalClient, error) {
	p, err := StartWorkload(ctx, g, name, path, strconv.Itoa(RedisPort), key)
	if err != nil {
		return nil, err
	}
	line, err := p.WaitLog(ctx, g, time.Second, "READY ")
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(strings.TrimPrefix(line, "READY "))
	if err != nil {
		return nil, fmt.Errorf("parse the local port in %q of process %d: %w", line, p.PID, err)
	}
	return &LocalClient{Preserved: p, Port: port}, nil
}

// RoundTrip makes the client send one INCR and waits at most d for its
// reply, which must count every request so far: a lost or repeated
// request, or a broken connection, fails.
func (c *LocalClient) RoundTrip(ctx context.Context, g *qemu.Guest, d time.Duration) error {
	res, err := g.Run(ctx, "kill", "-USR1", strconv.Itoa(c.PID))
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("kill -USR1 %d: %s", c.PID, res.Stderr)
	}
	want := fmt.Sprintf("reply %d", c.Replies+1)
	line, err := c.WaitLog(ctx, g, d, want, "FAIL")
	if err != nil {
		return fmt.Errorf("local client %d on port %d: %w", c.PID, c.Port, err)
	}
	if line != want {
		return fmt.Errorf("local client %d on port %d: log line %q, want %q", c.PID, c.Port, line, want)
	}
	c.Replies++
	return nil
}
