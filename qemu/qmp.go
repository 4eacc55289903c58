package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// defaultQMPTimeout bounds a QMP command whose ctx has no deadline.
const defaultQMPTimeout = time.Minute

// qmpConn is a lazily opened connection to the QEMU monitor (QMP). One
// command runs at a time.
type qmpConn struct {
	path string

	mu     sync.Mutex // held for a whole command
	r      *bufio.Reader
	nextID int

	connMu sync.Mutex // guards conn and closed, so shutdown need not wait for mu
	conn   net.Conn
	closed bool
}

// qmpError is an error response from QEMU, as opposed to a failure to talk
// to it.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string {
	return e.Class + ": " + e.Desc
}

// qmpMessage is any message QEMU sends: the greeting, a response or an
// asynchronous event.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Event  string          `json:"event"`
	ID     *int            `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
}

// QMP runs a QEMU monitor command and returns its "return" value. args is
// encoded as the command's "arguments"; nil sends none. Events that arrive
// meanwhile are skipped. Example:
//
//	g.QMP(ctx, "dump-guest-memory", map[string]any{"paging": false, "protocol": "file:/tmp/mem"})
func (g *Guest) QMP(ctx context.Context, command string, args any) (json.RawMessage, error) {
	ret, err := g.qmp.execute(ctx, command, args)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	return ret, nil
}

func (q *qmpConn) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultQMPTimeout)
	}
	conn, err := q.connection(deadline)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	ret, err := q.call(conn, command, args)
	var qerr *qmpError
	if err != nil && !errors.As(err, &qerr) {
		// The stream may hold half a message now; start afresh next time.
		q.dropConnection(conn)
	}
	return ret, err
}

// connection returns the open connection, or opens one.
//
// Preconditions: q.mu is held.
func (q *qmpConn) connection(deadline time.Time) (net.Conn, error) {
	q.connMu.Lock()
	conn, closed := q.conn, q.closed
	q.connMu.Unlock()
	if closed {
		return nil, errors.New("guest closed")
	}
	if conn != nil {
		return conn, nil
	}
	conn, err := q.connect(deadline)
	if err != nil {
		return nil, err
	}
	q.connMu.Lock()
	defer q.connMu.Unlock()
	if q.closed {
		conn.Close()
		return nil, errors.New("guest closed")
	}
	q.conn = conn
	return conn, nil
}

// connect opens the socket, reads the greeting and leaves capabilities
// negotiation mode, after which QEMU accepts commands.
//
// Preconditions: q.mu is held.
func (q *qmpConn) connect(deadline time.Time) (net.Conn, error) {
	conn, err := net.DialTimeout("unix", q.path, time.Until(deadline))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	q.r = bufio.NewReader(conn)
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	greeting, err := q.read()
	if err == nil && greeting.QMP == nil {
		err = errors.New("greeting has no QMP member")
	}
	if err == nil {
		_, err = q.call(conn, "qmp_capabilities", nil)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("negotiate capabilities: %w", err)
	}
	return conn, nil
}

// call sends one command and reads until the response with its id. A
// response left over from a command that timed out has another id and is
// skipped.
func (q *qmpConn) call(conn net.Conn, command string, args any) (json.RawMessage, error) {
	q.nextID++
	id := q.nextID
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode arguments: %w", err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for {
		msg, err := q.read()
		if err != nil {
			return nil, err
		}
		if msg.ID == nil || *msg.ID != id {
			continue
		}
		if msg.Error != nil {
			return nil, msg.Error
		}
		return msg.Return, nil
	}
}

func (q *qmpConn) read() (qmpMessage, error) {
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return qmpMessage{}, fmt.Errorf("read: %w", err)
	}
	var msg qmpMessage
	if err := json.Unmarshal(line, &msg); err != nil {
		return qmpMessage{}, fmt.Errorf("decode %q: %w", line, err)
	}
	return msg, nil
}

func (q *qmpConn) dropConnection(conn net.Conn) {
	q.connMu.Lock()
	defer q.connMu.Unlock()
	conn.Close()
	if q.conn == conn {
		q.conn = nil
	}
}

// shutdown closes the connection, which ends a command in progress, and
// fails later commands.
func (q *qmpConn) shutdown() {
	q.connMu.Lock()
	defer q.connMu.Unlock()
	q.closed = true
	if q.conn != nil {
		q.conn.Close()
	}
}
