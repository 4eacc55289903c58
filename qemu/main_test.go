package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ksu-project/ksu/qemu/internal/agent"
)

// fakeQEMUEnv makes the test binary act as QEMU (see fakeQEMU) when it is
// started as Config.Binary.
const fakeQEMUEnv = "KSU_TEST_FAKE_QEMU"

// fakeParentEnv makes the test binary start a fake QEMU, print its pid and
// wait to be killed (see fakeParent).
const fakeParentEnv = "KSU_TEST_FAKE_PARENT"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeQEMUEnv); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	if workDir := os.Getenv(fakeParentEnv); workDir != "" {
		os.Exit(fakeParent(workDir))
	}
	code := m.Run()
	if testBinaries.dir != "" {
		os.RemoveAll(testBinaries.dir)
	}
	os.Exit(code)
}

// fakeQEMU replaces QEMU in the tests that need no guest. It creates
// the agent and QMP sockets named in args, serves an agent that runs
// commands on the host, prints console lines, and then, by mode:
//
//	run   keeps running until killed
//	exit  writes an error to stderr and exits with status 3
func fakeQEMU(mode string, args []string) int {
	agentPath, qmpPath := fakeSocketPaths(args)
	agentListener, err := net.Listen("unix", agentPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu:", err)
		return 1
	}
	qmpListener, err := net.Listen("unix", qmpPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu:", err)
		return 1
	}
	defer qmpListener.Close()
	conn, err := agentListener.Accept() // Start connects before it returns
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu:", err)
		return 1
	}
	go serveFakeAgent(conn)
	fmt.Print("fake firmware\r\nLinux version fake\n")
	fmt.Printf("args: %s\n", strings.Join(args, " "))
	if mode == "exit" {
		fmt.Println("fake guest halting")
		fmt.Fprintln(os.Stderr, "fake qemu: guest said goodbye")
		return 3
	}
	fmt.Println("FAKE-READY")
	time.Sleep(time.Minute)
	return 0
}

func fakeSocketPaths(args []string) (agentPath, qmpPath string) {
	for i, a := range args {
		if i+1 >= len(args) {
			break
		}
		next := args[i+1]
		switch {
		case a == "-chardev" && strings.HasPrefix(next, "socket,id=agent,"):
			for _, opt := range strings.Split(next, ",") {
				if p, ok := strings.CutPrefix(opt, "path="); ok {
					agentPath = p
				}
			}
		case a == "-qmp":
			qmpPath = strings.Split(strings.TrimPrefix(next, "unix:"), ",")[0]
		}
	}
	return agentPath, qmpPath
}

func serveFakeAgent(conn net.Conn) {
	srv, err := agent.NewServer(os.TempDir(), 0)
	if err != nil {
		return
	}
	srv.Serve(context.Background(), conn, conn)
}

// fakeParent starts a fake QEMU with Start, prints "qemu PID" and sleeps
// until its own parent kills it, which must take the fake QEMU along.
func fakeParent(workDir string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake parent:", err)
		return 1
	}
	os.Setenv(fakeQEMUEnv, "run")
	os.Setenv(AccelEnv, AccelTCG)
	kernel := filepath.Join(workDir, "vmlinuz")
	os.WriteFile(kernel, nil, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Start from a goroutine that ends right away, so the thread that ran
	// Start would be free to exit if the harness did not keep it.
	started := make(chan *Guest)
	go func() {
		g, err := Start(ctx, Config{Kernel: kernel, WorkDir: workDir, Binary: self})
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake parent:", err)
		}
		started <- g
	}()
	g := <-started
	if g == nil {
		return 1
	}
	fmt.Printf("qemu %d\n", g.cmd.Process.Pid)
	time.Sleep(time.Minute)
	return 0
}
