package scenario

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// RedisError is an error reply ("-ERR ...") from the server. The
// connection stays usable after one.
type RedisError string

func (e RedisError) Error() string { return "redis: " + string(e) }

// RedisClient speaks RESP2 to a Redis server over one TCP connection. It
// never reconnects, so any failure of the connection (reset, close,
// timeout) ends it, and tests use that to prove the connection survived.
// A RedisClient is safe for concurrent use, and runs one command at a
// time.
type RedisClient struct {
	// Timeout bounds each command, from writing the request to reading
	// the whole reply. It is 5 minutes unless set before the first Do.
	Timeout time.Duration

	mu     sync.Mutex
	conn   net.Conn
	r      *bufio.Reader
	broken error // first I/O error; every later Do returns it
}

// DialRedis opens the client's connection to addr (host:port).
func DialRedis(addr string) (*RedisClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to redis at %s: %w", addr, err)
	}
	return NewRedisClient(conn), nil
}

// NewRedisClient returns a client that uses conn and closes it on Close.
func NewRedisClient(conn net.Conn) *RedisClient {
	return &RedisClient{Timeout: 5 * time.Minute, conn: conn, r: bufio.NewReader(conn)}
}

// Close closes the connection.
func (c *RedisClient) Close() error { return c.conn.Close() }

// LocalAddr returns the client's end of the connection, which stays the
// same for the client's whole life.
func (c *RedisClient) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Do sends the command args and returns the reply: a string for a simple
// or bulk string, an int64 for an integer, a []any for an array, nil for
// a null bulk string or array. An error reply returns a RedisError. Any
// other error means the connection is broken for good.
func (c *RedisClient) Do(args ...string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, c.broken
	}
	reply, err := c.roundTrip(args)
	var redisErr RedisError
	if err != nil && !errors.As(err, &redisErr) {
		c.broken = fmt.Errorf("redis connection %v: %w", c.conn.LocalAddr(), err)
		return nil, c.broken
	}
	return reply, err
}

func (c *RedisClient) roundTrip(args []string) (any, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.Timeout)); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(encodeCommand(args)); err != nil {
		return nil, fmt.Errorf("send %s: %w", args[0], err)
	}
	reply, err := readReply(c.r)
	if err != nil {
		return nil, fmt.Errorf("read reply to %s: %w", args[0], err)
	}
	if e, ok := reply.(RedisError); ok {
		return nil, e
	}
	return reply, nil
}

// Pipeline sends cmds in one write and then reads one reply per command,
// in order. An error reply takes its command's place as a RedisError
// value. Any other error breaks the connection, as in Do, and the
// replies read before it are returned with it.
func (c *RedisClient) Pipeline(cmds ...[]string) ([]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, c.broken
	}
	replies, err := c.pipeline(cmds)
	if err != nil {
		c.broken = fmt.Errorf("redis connection %v: %w", c.conn.LocalAddr(), err)
		return replies, c.broken
	}
	return replies, nil
}

func (c *RedisClient) pipeline(cmds [][]string) ([]any, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.Timeout)); err != nil {
		return nil, err
	}
	var req []byte
	for _, args := range cmds {
		req = append(req, encodeCommand(args)...)
	}
	if _, err := c.conn.Write(req); err != nil {
		return nil, fmt.Errorf("send %d pipelined commands: %w", len(cmds), err)
	}
	replies := make([]any, 0, len(cmds))
	for _, args := range cmds {
		reply, err := readReply(c.r)
		if err != nil {
			return replies, fmt.Errorf("read reply to %s: %w", args[0], err)
		}
		replies = append(replies, reply)
	}
	return replies, nil
}

// String sends args and returns the reply, which must be a string.
func (c *RedisClient) String(args ...string) (string, error) {
	reply, err := c.Do(args...)
	if err != nil {
		return "", err
	}
	s, ok := reply.(string)
	if !ok {
		return "", fmt.Errorf("%s: reply %v (%T), want a string", args[0], reply, reply)
	}
	return s, nil
}

// Int sends args and returns the reply, which must be an integer.
func (c *RedisClient) Int(args ...string) (int64, error) {
	reply, err := c.Do(args...)
	if err != nil {
		return 0, err
	}
	n, ok := reply.(int64)
	if !ok {
		return 0, fmt.Errorf("%s: reply %v (%T), want an integer", args[0], reply, reply)
	}
	return n, nil
}

// encodeCommand encodes args as a RESP array of bulk strings.
func encodeCommand(args []string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

// maxBulk bounds the length of a bulk string or array that readReply
// accepts (Redis's own proto-max-bulk-len default is 512 MB).
const maxBulk = 512 << 20

// readReply decodes one RESP2 reply. An error reply is returned as a
// RedisError value, not as an error.
func readReply(r *bufio.Reader) (any, error) {
	kind, line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	switch kind {
	case '+':
		return line, nil
	case '-':
		return RedisError(line), nil
	case ':':
		return strconv.ParseInt(line, 10, 64)
	case '$':
		return readBulk(r, line)
	case '*':
		return readArray(r, line)
	}
	return nil, fmt.Errorf("invalid RESP reply type %q", kind)
}

// readLine reads one CRLF-terminated line and splits off its type byte.
func readLine(r *bufio.Reader) (byte, string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, "", err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, "", fmt.Errorf("invalid RESP line %q", line)
	}
	return line[0], line[1 : len(line)-2], nil
}

func readBulk(r *bufio.Reader, header string) (any, error) {
	n, err := parseLength(header)
	if err != nil || n < 0 {
		return nil, err
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if string(buf[n:]) != "\r\n" {
		return nil, fmt.Errorf("bulk string of %d bytes lacks its CRLF", n)
	}
	return string(buf[:n]), nil
}

func readArray(r *bufio.Reader, header string) (any, error) {
	n, err := parseLength(header)
	if err != nil || n < 0 {
		return nil, err
	}
	items := make([]any, n)
	for i := range items {
		if items[i], err = readReply(r); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// parseLength parses the length of a bulk string or array; -1 is null.
func parseLength(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > maxBulk {
		return 0, fmt.Errorf("invalid RESP length %q", s)
	}
	return n, nil
}

// PauseStats is what a PauseWatch saw on the connection.
type PauseStats struct {
	// Pings is the number of PING commands that got PONG.
	Pings int
	// MaxPause is the longest time between sending a PING and reading
	// its PONG.
	MaxPause time.Duration
	// At is when the PING with the longest round trip was sent.
	At time.Time
}

// PauseWatch sends PING on a client's connection at a fixed interval and
// records the longest round trip, which is the pause a client of the
// server sees.
type PauseWatch struct {
	stop  chan struct{}
	done  chan struct{}
	stats PauseStats
	err   error
}

// WatchPauses starts sending PING on c every interval until Stop.
func (c *RedisClient) WatchPauses(interval time.Duration) *PauseWatch {
	w := &PauseWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(c, interval)
	return w
}

func (w *PauseWatch) run(c *RedisClient, interval time.Duration) {
	defer close(w.done)
	w.err = everyTick(w.stop, interval, func() error {
		sent := time.Now()
		pong, err := c.String("PING")
		if err == nil && pong != "PONG" {
			err = fmt.Errorf("PING: reply %q, want PONG", pong)
		}
		if err != nil {
			return err
		}
		w.stats.Pings++
		if d := time.Since(sent); d > w.stats.MaxPause {
			w.stats.MaxPause, w.stats.At = d, sent
		}
		return nil
	})
}

// everyTick calls step every interval until stop is closed or step
// returns an error, which it returns.
func everyTick(stop <-chan struct{}, interval time.Duration, step func() error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		if err := step(); err != nil {
			return err
		}
	}
}

// Stop stops the watch after the PING in flight, if any, and returns
// what it saw, with the error that ended it early.
func (w *PauseWatch) Stop() (PauseStats, error) {
	close(w.stop)
	<-w.done
	return w.stats, w.err
}

// WriteStats is what a WriteLoad sent and read. Write n is the pair
// "INCR counter" and "RPUSH list n", and writes are numbered from 1.
type WriteStats struct {
	// Sent is the number of writes sent.
	Sent int
	// Acked is the number of acknowledged writes: the client read the
	// replies of writes 1 to Acked, and each reply was n.
	Acked int
	// MaxPause is the longest round trip of one batch, from sending it
	// to reading its last reply, and At is when that batch was sent.
	MaxPause time.Duration
	At       time.Time
	// AckedBefore counts the writes acknowledged before the batch with
	// the longest round trip was sent, AckedAcross the writes of that
	// batch, and AckedAfter the writes acknowledged after it.
	AckedBefore, AckedAcross, AckedAfter int
}

// WriteLoad writes to a Redis server on a client's connection at a
// fixed interval, in pipelined batches, until Stop. Each reply must be
// n, the number of the write: INCR returns the new counter and RPUSH the
// new list length, so a write applied twice or lost shows in the next
// reply. The counter and the list must not exist when the load starts.
type WriteLoad struct {
	counter, list string
	batch         int
	stop          chan struct{}
	done          chan struct{}
	stats         WriteStats
	err           error
}

// StartWriteLoad starts writing to counter and list on c: every
// interval, one batch of batch writes sent in one pipeline.
func (c *RedisClient) StartWriteLoad(counter, list string, batch int, interval time.Duration) *WriteLoad {
	w := &WriteLoad{counter: counter, list: list, batch: batch,
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(c, interval)
	return w
}

func (w *WriteLoad) run(c *RedisClient, interval time.Duration) {
	defer close(w.done)
	w.err = everyTick(w.stop, interval, func() error { return w.writeBatch(c) })
}

// writeBatch sends the next batch and checks its replies. The writes
// whose replies arrived count as acknowledged even when the connection
// broke before the rest.
func (w *WriteLoad) writeBatch(c *RedisClient) error {
	first := w.stats.Sent + 1
	cmds := make([][]string, 0, 2*w.batch)
	for n := first; n < first+w.batch; n++ {
		cmds = append(cmds, []string{"INCR", w.counter}, []string{"RPUSH", w.list, strconv.Itoa(n)})
	}
	sent := time.Now()
	w.stats.Sent += w.batch
	replies, err := c.Pipeline(cmds...)
	took := time.Since(sent)
	for i := 0; i+1 < len(replies); i += 2 {
		n := first + i/2
		if err := w.checkReplies(n, replies[i], replies[i+1]); err != nil {
			return err
		}
		w.stats.Acked = n
	}
	if err != nil {
		return err
	}
	if took > w.stats.MaxPause {
		w.stats.MaxPause, w.stats.At = took, sent
		w.stats.AckedBefore, w.stats.AckedAcross = first-1, w.batch
	}
	return nil
}

// checkReplies checks the replies to INCR and RPUSH of write n.
func (w *WriteLoad) checkReplies(n int, incr, rpush any) error {
	if incr != int64(n) {
		return fmt.Errorf("write %d: INCR %s = %v, want %d", n, w.counter, incr, n)
	}
	if rpush != int64(n) {
		return fmt.Errorf("write %d: RPUSH %s %d = %v, want list length %d", n, w.list, n, rpush, n)
	}
	return nil
}

// Stop stops the load after the batch in flight, if any, and returns
// what it saw, with the error that ended it early.
func (w *WriteLoad) Stop() (WriteStats, error) {
	close(w.stop)
	<-w.done
	s := w.stats
	s.AckedAfter = s.Acked - s.AckedBefore - s.AckedAcross
	return s, w.err
}
