package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// responseGrace is how long the client waits for a "run" response beyond
// the timeout it sent, because the agent needs time to kill the command and
// send the output, and software-emulated guests are slow.
const responseGrace = 15 * time.Second

// ErrClosed is returned for requests on a client whose connection is closed
// or failed.
var ErrClosed = errors.New("agent connection closed")

// Client sends requests to an agent over one connection and matches the
// responses by id. It is safe for concurrent use.
type Client struct {
	conn net.Conn

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan Response
	session string
	done    chan struct{} // closed when the read loop ends
	err     error         // the read loop's final error
}

// NewClient returns a client on conn and starts reading responses. The
// client owns conn and closes it in Close.
func NewClient(conn net.Conn) *Client {
	c := &Client{
		conn:    conn,
		pending: make(map[uint64]chan Response),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Close closes the connection and fails the requests still waiting.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Ping sends one ping and returns the agent's Info. It waits until ctx is
// done, because an agent that is not running yet sends no response.
func (c *Client) Ping(ctx context.Context) (Info, error) {
	resp, err := c.call(ctx, Request{Op: OpPing})
	if err != nil {
		return Info{}, err
	}
	if resp.Info == nil {
		return Info{}, fmt.Errorf("ping response id=%d has no info", resp.ID)
	}
	if resp.Info.Version != Version {
		return Info{}, fmt.Errorf("agent speaks protocol version %d, host %d: rebuild the guest image",
			resp.Info.Version, Version)
	}
	c.setSession(resp.Info.Session)
	return *resp.Info, nil
}

// Do sends a "run" or "spawn" request and returns the response. It fills in
// the id, the session and, for "run", a timeout derived from ctx (or
// DefaultTimeout). A request the agent rejected with CodeSession was not
// run, so Do learns the new session and sends it once more. An error
// response is returned together with an *Error.
func (c *Client) Do(ctx context.Context, req Request) (Response, error) {
	if req.Op == OpRun && req.TimeoutMS == 0 {
		req.TimeoutMS = runTimeout(ctx).Milliseconds()
	}
	var resp Response
	for attempt := 0; attempt < 2; attempt++ {
		req.Session = c.currentSession()
		var err error
		resp, err = c.call(ctx, req)
		if err != nil {
			return resp, err
		}
		if resp.Error == nil || resp.Error.Code != CodeSession || resp.Info == nil {
			break
		}
		c.setSession(resp.Info.Session)
	}
	if resp.Error != nil {
		return resp, resp.Error
	}
	return resp, nil
}

// runTimeout leaves the agent a margin before ctx's deadline, so that a
// killed command's partial output still reaches the host. The margin is a
// quarter of the time left, at most 5 s: a loaded software-emulated guest
// needs several hundred milliseconds to kill the command and respond.
func runTimeout(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return DefaultTimeout
	}
	left := time.Until(deadline)
	margin := min(left/4, 5*time.Second)
	return max(left-margin, time.Millisecond)
}

// call sends req with a fresh id and waits for the response with that id.
func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	id, ch, err := c.register()
	if err != nil {
		return Response{}, err
	}
	defer c.unregister(id)
	req.ID = id
	if err := c.write(ctx, req); err != nil {
		return Response{}, err
	}
	var expire <-chan time.Time
	if limit := responseLimit(ctx, req); limit > 0 {
		timer := time.NewTimer(limit)
		defer timer.Stop()
		expire = timer.C
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return Response{}, fmt.Errorf("wait for agent response id=%d: %w", id, ctx.Err())
	case <-expire:
		return Response{}, fmt.Errorf("wait for agent response id=%d op=%s: no response within %s",
			id, req.Op, responseLimit(ctx, req))
	case <-c.done:
		return Response{}, fmt.Errorf("wait for agent response id=%d: %w", id, c.closeErr())
	}
}

// responseLimit bounds the wait for a "run" or "spawn" response when ctx
// has no deadline, so that a hung guest cannot hang the host. Zero means no
// limit: pings wait for ctx alone.
func responseLimit(ctx context.Context, req Request) time.Duration {
	if _, ok := ctx.Deadline(); ok {
		return 0
	}
	switch req.Op {
	case OpRun:
		return time.Duration(req.TimeoutMS)*time.Millisecond + responseGrace
	case OpSpawn:
		return responseGrace
	}
	return 0
}

func (c *Client) register() (uint64, chan Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return 0, nil, c.err
	default:
	}
	c.nextID++
	ch := make(chan Response, 1)
	c.pending[c.nextID] = ch
	return c.nextID, ch, nil
}

func (c *Client) unregister(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, id)
}

// write sends req. The write deadline comes from ctx, so a guest that
// stopped reading cannot block the caller past it. A write cut short by the
// deadline leaves a fragment that the agent skips (see the package doc).
func (c *Client) write(ctx context.Context, req Request) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(responseGrace)
	}
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	err := writeMessage(c.conn, req)
	if isConnClosed(err) {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if err != nil {
		return fmt.Errorf("send agent request id=%d op=%s: %w", req.ID, req.Op, err)
	}
	return nil
}

// isConnClosed reports whether err from a write means that the peer or
// this side closed the connection. The read loop may not have noticed yet.
func isConnClosed(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed)
}

// readLoop delivers responses to their waiting callers until the
// connection fails. It skips malformed lines and responses without a waiting
// caller, such as the response to a request that timed out or the last
// message of a previous agent.
func (c *Client) readLoop() {
	lr := newLineReader(c.conn, MaxLine)
	var err error
	for {
		var line []byte
		line, err = lr.next()
		if errors.Is(err, errLineTooLong) {
			continue
		}
		if err != nil {
			break
		}
		var resp Response
		if json.Unmarshal(line, &resp) != nil {
			continue
		}
		c.deliver(resp)
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	close(c.done)
	c.mu.Unlock()
}

func (c *Client) deliver(resp Response) {
	c.mu.Lock()
	ch := c.pending[resp.ID]
	delete(c.pending, resp.ID)
	c.mu.Unlock()
	if ch != nil {
		ch <- resp
	}
}

func (c *Client) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) currentSession() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *Client) setSession(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.session = s
}
