package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runTool runs one toolbox command and returns the exit status:
//
//	echo ARGS…        print ARGS to stdout
//	stderr ARGS…      print ARGS to stderr
//	exit N            exit with status N
//	sleep SECONDS     sleep
//	spew N            write N bytes of 'x' to stdout
//	cat               copy stdin to stdout
//	readfile PATH     copy PATH to stdout
//	touch PATH        create PATH
//	sid               print "pid PID sid SID"
//	kill PID SIGNAL   send SIGNAL (a number, or USR1, USR2, KILL, TERM)
func runTool(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: testinit COMMAND [ARGS…]")
		return 2
	}
	if err := tool(args[0], args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "testinit %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func tool(name string, args []string) error {
	switch name {
	case "echo":
		fmt.Println(strings.Join(args, " "))
	case "stderr":
		fmt.Fprintln(os.Stderr, strings.Join(args, " "))
	case "exit":
		os.Exit(atoi(args, 0))
	case "sleep":
		time.Sleep(time.Duration(atoi(args, 0)) * time.Second)
	case "spew":
		_, err := io.CopyN(os.Stdout, repeatReader('x'), int64(atoi(args, 0)))
		return err
	case "cat":
		_, err := io.Copy(os.Stdout, os.Stdin)
		return err
	case "readfile":
		b, err := os.ReadFile(arg(args, 0))
		os.Stdout.Write(b)
		return err
	case "touch":
		return os.WriteFile(arg(args, 0), nil, 0o644)
	case "sid":
		sid, err := unix.Getsid(0)
		fmt.Printf("pid %d sid %d\n", os.Getpid(), sid)
		return err
	case "kill":
		return kill(args)
	default:
		return fmt.Errorf("unknown command")
	}
	return nil
}

func kill(args []string) error {
	signals := map[string]unix.Signal{
		"USR1": unix.SIGUSR1, "USR2": unix.SIGUSR2, "KILL": unix.SIGKILL, "TERM": unix.SIGTERM,
	}
	sig, ok := signals[arg(args, 1)]
	if !ok {
		sig = unix.Signal(atoi(args, 1))
	}
	pid, err := strconv.Atoi(arg(args, 0))
	if err != nil || pid <= 0 || sig == 0 {
		return fmt.Errorf("invalid pid %q or signal %q", arg(args, 0), arg(args, 1))
	}
	return unix.Kill(pid, sig)
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func atoi(args []string, i int) int {
	n, _ := strconv.Atoi(arg(args, i))
	return n
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	copy(p, bytes.Repeat([]byte{byte(r)}, len(p)))
	return len(p), nil
}
