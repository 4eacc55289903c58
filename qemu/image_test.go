package qemu

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// imagesEnv names the directory of the images that image/build.sh builds.
const imagesEnv = "KSU_IMAGES"

// readEnvFile parses the KEY=VALUE lines of a shell variables file such as
// images.env or qemu/versions. Comments and blank lines are skipped, and
// one level of quotes is removed.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if unquoted, err := strconv.Unquote(value); err == nil {
			value = unquoted
		}
		vars[key] = strings.Trim(value, "'")
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return vars
}

// TestIntegrationImage boots the old kernel of the built images with the
// Debian root disk and checks the agent, the console and a port forward.
func TestIntegrationImage(t *testing.T) {
	images := os.Getenv(imagesEnv)
	if images == "" {
		t.Skip("skipping: KSU_IMAGES not set; ./build.sh setup builds the images")
	}
	release := readEnvFile(t, filepath.Join(images, "images.env"))["OLD_RELEASE"]
	if release == "" {
		t.Fatalf("%s/images.env has no OLD_RELEASE", images)
	}
	versions := readEnvFile(t, "versions")
	memory, _ := strconv.Atoi(versions["GUEST_MEMORY_MB"])
	cpus, _ := strconv.Atoi(versions["GUEST_CPUS"])
	const guestPort = 7777
	g := StartT(t, Config{
		Kernel:   filepath.Join(images, "kernels", release, "vmlinuz"),
		Initrd:   filepath.Join(images, "kernels", release, "initrd.cpio"),
		Disk:     filepath.Join(images, "rootfs.img"),
		Cmdline:  "root=/dev/vda rw",
		MemoryMB: memory,
		CPUs:     cpus,
		Forwards: []Forward{{GuestPort: guestPort}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	info, err := g.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot: agent answered %s after QEMU started (accel %s)",
		time.Since(g.StartedAt()).Round(time.Millisecond), g.Accel())
	if info.Release != release {
		t.Errorf("WaitAgent() release = %q, want %q", info.Release, release)
	}
	out, err := g.Output(ctx, "uname", "-r")
	if err != nil || strings.TrimSpace(string(out)) != release {
		t.Errorf("Output(uname -r) = %q, %v; want %q", out, err, release)
	}
	if _, err := g.WaitConsole(ctx, regexp.MustCompile(regexp.QuoteMeta("Linux version "+release))); err != nil {
		t.Error(err)
	}
	testForward(t, ctx, g, guestPort)
}

// testForward serves one line from a guest port and reads it on the host
// through the forward.
func testForward(t *testing.T, ctx context.Context, g *Guest, guestPort int) {
	const greeting = "hello from the guest"
	script := fmt.Sprintf("echo '%s' | nc -N -l %d", greeting, guestPort)
	if _, err := g.Spawn(ctx, "sh", "-c", script); err != nil {
		t.Fatalf("Spawn(%q) = %v", script, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", g.HostPort(guestPort))
	var got string
	// User networking accepts the host's connection before the guest
	// listens and then closes it, so retry until the line arrives.
	for range 50 {
		got = readLineFrom(addr)
		if got != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != greeting {
		t.Errorf("line read from %s (guest port %d) = %q, want %q", addr, guestPort, got, greeting)
	}
}

func readLineFrom(addr string) string {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	return strings.TrimSpace(string(b))
}

func TestReadEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "images.env")
	content := "# comment\nOLD_RELEASE=6.1.0-50-cloud-amd64\nEXTRA=\"a b\"\nQUOTED='x'\n\nnot a variable\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"OLD_RELEASE": "6.1.0-50-cloud-amd64", "EXTRA": "a b", "QUOTED": "x"}
	if diff := cmp.Diff(want, readEnvFile(t, path)); diff != "" {
		t.Errorf("readEnvFile() mismatch (-want +got):\n%s", diff)
	}
	if got := readEnvFile(t, "versions")["GUEST_CPUS"]; got == "" {
		t.Errorf("readEnvFile(versions)[GUEST_CPUS] is empty, want the pinned CPU count")
	}
}
