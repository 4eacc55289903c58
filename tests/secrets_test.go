package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/tests/scenario"
)

// secretSource is a C program that builds a random marker in a heap
// buffer from /dev/urandom, so that the marker never appears on a command
// line, in the test's messages or in the guest agent's buffers. It prints
// "READY ADDRESS LENGTH" with the buffer's address; on SIGUSR2 it prints
// PASS if the marker kept its form, or FAIL.
const secretSource = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "ksu-secret-"
#define LEN (sizeof(PREFIX) - 1 + 32)

static volatile sig_atomic_t check;
static void on_usr2(int sig) { (void)sig; check = 1; }

int main(void)
{
	static const char hex[] = "0123456789abcdef";
	volatile unsigned char raw[16];
	char *buf = malloc(4096);
	int fd = open("/dev/urandom", O_RDONLY);
	if (!buf || fd < 0 || read(fd, (void *)raw, sizeof(raw)) != sizeof(raw))
		return 2;
	close(fd);
	memcpy(buf, PREFIX, sizeof(PREFIX) - 1);
	for (size_t i = 0; i < sizeof(raw); i++) {
		buf[sizeof(PREFIX) - 1 + 2 * i] = hex[raw[i] >> 4];
		buf[sizeof(PREFIX) - 1 + 2 * i + 1] = hex[raw[i] & 15];
		raw[i] = 0;
	}
	buf[LEN] = 0;
	signal(SIGUSR2, on_usr2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY %lu %zu\n", (unsigned long)buf, LEN);
	while (!check)
		pause();
	if (strncmp(buf, PREFIX, sizeof(PREFIX) - 1) != 0 || strlen(buf) != LEN) {
		printf("FAIL: the marker changed\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
`

// TestIntegrationSnapshotWiped preserves a process that holds a random
// marker in its heap, switches kernels, then dumps the guest's physical
// memory through QEMU's monitor and counts the marker: it must appear
// once, in the restored process's page, and nowhere that ksu, ksu-init or
// either kernel left a copy of the snapshot. The marker is read from the
// process only after the memory dump, so the read's copies do not count.
// The test also checks that ksu update rejects a user other than root.
func TestIntegrationSnapshotWiped(t *testing.T) {
	im := findImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	g := bootGuest(t, ctx, im, im.OldRelease)
	const secretPath = "/usr/local/bin/ksu-secret"
	if err := scenario.InstallProgram(ctx, g, t.TempDir(), secretPath, secretSource); err != nil {
		t.Fatal(err)
	}

	res, err := g.Run(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"/usr/sbin/ksu", "update", "--kernel", "/boot/vmlinuz-"+im.NewRelease, "--yes")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "must run as root") {
		t.Errorf("ksu update as nobody: exit %d, stderr %q, want a failure saying it must run as root", res.ExitCode, res.Stderr)
	}

	w, err := scenario.StartWorkload(ctx, g, "secret", secretPath)
	if err != nil {
		t.Fatal(err)
	}
	ready, err := w.WaitLog(ctx, g, time.Minute, "READY")
	if err != nil {
		t.Fatal(err)
	}
	var addr, length uint64
	if _, err := fmt.Sscanf(ready, "READY %d %d", &addr, &length); err != nil {
		t.Fatalf("parse %q: %v", ready, err)
	}

	s, err := scenario.UpdateKernel(ctx, g, im.NewRelease, "--pid", strconv.Itoa(w.PID), "--wipe-free-memory")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", s.Report())
	dmesg, err := g.Output(ctx, "dmesg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dmesg, []byte("heap free:on")) {
		t.Errorf("kernel log has no \"heap free:on\": the new kernel did not take init_on_free=1")
	}

	dump := filepath.Join(t.TempDir(), "guest-memory.elf")
	start := time.Now()
	if _, err := g.QMP(ctx, "dump-guest-memory", map[string]any{"paging": false, "protocol": "file:" + dump}); err != nil {
		t.Fatal(err)
	}
	mem, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest memory: %d MiB dumped in %v", len(mem)>>20, time.Since(start).Round(time.Millisecond))

	marker, err := g.Output(ctx, "dd", fmt.Sprintf("if=/proc/%d/mem", w.PID), "bs=1",
		fmt.Sprintf("skip=%d", addr), fmt.Sprintf("count=%d", length), "status=none")
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(marker)) != length || !bytes.HasPrefix(marker, []byte("ksu-secret-")) {
		t.Fatalf("marker read from process %d at %#x is %d bytes, want %d starting with ksu-secret-", w.PID, addr, len(marker), length)
	}
	if n := bytes.Count(mem, marker); n != 1 {
		t.Errorf("guest memory holds the marker %d times, want once (the restored process's page)", n)
	}
	if verdict, err := w.Check(ctx, g); err != nil {
		t.Errorf("check process %d: %v", w.PID, err)
	} else if verdict != "PASS" {
		t.Errorf("process %d: verdict %q, want PASS", w.PID, verdict)
	}
}
