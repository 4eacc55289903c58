package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the protocol version. The ping response carries it so that a
// host built from newer sources notices an old agent in a stale image.
const Version = 1

// Limits of the protocol.
const (
	// MaxOutput is the number of bytes of each output stream that a "run"
	// response carries. The agent discards the rest and sets Truncated.
	MaxOutput = 16 << 20
	// MaxLine is the longest message a reader accepts. It leaves room for
	// two base64-encoded streams of MaxOutput bytes, or a large stdin.
	MaxLine = 64 << 20
	// DefaultTimeout applies to a "run" request with no timeout_ms.
	DefaultTimeout = 5 * time.Minute
	// MaxTimeout caps timeout_ms.
	MaxTimeout = 24 * time.Hour
)

// Operations.
const (
	OpPing  = "ping"
	OpRun   = "run"
	OpSpawn = "spawn"
)

// Error codes.
const (
	// CodeBadRequest: the request is malformed (unknown op, empty argv).
	CodeBadRequest = "bad-request"
	// CodeSession: the request names another agent's session, so the
	// agent did not run it. The response carries the current Info.
	CodeSession = "session"
	// CodeBusy: too many requests are running at once.
	CodeBusy = "busy"
	// CodeStart: the command could not be started (not found, not
	// executable, bad directory, log file not writable).
	CodeStart = "start"
	// CodeTimeout: the command ran past its timeout and was killed.
	CodeTimeout = "timeout"
	// CodeInternal: the agent failed while serving the request.
	CodeInternal = "internal"
)

// Request is one message from the host to the agent.
type Request struct {
	ID      uint64 `json:"id"`
	Op      string `json:"op"`
	Session string `json:"session,omitempty"`
	// Argv is the command and its arguments. The agent resolves argv[0]
	// through PATH and runs no shell unless argv names one.
	Argv []string `json:"argv,omitempty"`
	// Env holds KEY=VALUE entries added to the agent's environment.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty means the agent's.
	Dir string `json:"dir,omitempty"`
	// Stdin is the standard input of a "run" command.
	Stdin []byte `json:"stdin,omitempty"`
	// TimeoutMS bounds a "run" command, in milliseconds.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Log is the guest file that receives a "spawn" command's output.
	// Empty lets the agent create one in its spawn directory.
	Log string `json:"log,omitempty"`
}

// Response is one message from the agent to the host.
type Response struct {
	ID    uint64 `json:"id"`
	Error *Error `json:"error,omitempty"`
	// Info is the response to a ping, and part of a CodeSession rejection.
	Info *Info `json:"info,omitempty"`

	// Fields of a "run" response.
	ExitCode  int    `json:"exit_code"`
	Signal    int    `json:"signal,omitempty"`
	Stdout    []byte `json:"stdout,omitempty"`
	Stderr    []byte `json:"stderr,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`

	// Fields of a "spawn" response.
	PID int    `json:"pid,omitempty"`
	Log string `json:"log,omitempty"`
}

// Info describes a running agent.
type Info struct {
	Version int    `json:"version"`
	Session string `json:"session"`
	PID     int    `json:"pid"`
	// Release is the guest kernel release (uname -r).
	Release string `json:"release"`
	// BootID is /proc/sys/kernel/random/boot_id, which changes with
	// every boot, kexec included.
	BootID string `json:"boot_id"`
}

// Error is the error of a failed request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns the message prefixed with the code.
func (e *Error) Error() string {
	return e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrTimeout) finds a timeout anywhere in a chain.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ErrTimeout matches, with errors.Is, the error of a "run" command that the
// agent killed at its timeout.
var ErrTimeout = &Error{Code: CodeTimeout}

var errLineTooLong = errors.New("message longer than agent.MaxLine")

// writeMessage encodes v as one framed line and writes it with a single
// Write call, so concurrent writers that share a lock never interleave.
func writeMessage(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	frame := make([]byte, 0, len(body)+2)
	frame = append(frame, '\n')
	frame = append(frame, body...)
	frame = append(frame, '\n')
	_, err = w.Write(frame)
	return err
}

// lineReader splits a stream into lines of at most max bytes.
type lineReader struct {
	br  *bufio.Reader
	max int
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next non-empty line without its newline. A line longer
// than max is consumed and reported as errLineTooLong; the reader stays
// usable. Other errors come from the underlying reader.
func (lr *lineReader) next() ([]byte, error) {
	for {
		line, err := lr.readLine()
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) > 0 {
			return line, nil
		}
	}
}

func (lr *lineReader) readLine() ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > lr.max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == nil && tooLong:
			return nil, errLineTooLong
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}
