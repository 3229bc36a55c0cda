// Package grpclite is a lean client for unary gRPC calls over one cleartext HTTP/2
// connection (h2c), for the registry's hot path: one Requester/SendMessage per
// REGISTER, 100,000 of them in a few seconds.
//
// grpc-go's unary path costs about forty percent of the CPU of a big start (a stream,
// its contexts, a timer per deadline, header encoding, the writer and reader
// goroutines' hand-offs) and half of its allocations. This client keeps what a unary
// call over one connection needs and nothing else:
//
//   - one connection, dialled on the first call and again after it fails (fail fast
//     within a short backoff, like grpc-go's TRANSIENT_FAILURE, so a wave of calls
//     against a dead peer does not become a wave of dials);
//   - a header block encoded once per method (HPACK literals without indexing, so it
//     is the same bytes on every call; grpc-timeout is the client's constant timeout);
//   - no timer per call: one sweep per connection fails the calls past their
//     deadline and resets their streams;
//   - the frames of calls sent together leave in one write;
//   - the peer's SETTINGS (concurrent streams, initial window, frame size), flow
//     control both ways, PING, GOAWAY (the calls it refused are sent again once, on a
//     new connection, as are streams refused with REFUSED_STREAM) and RST_STREAM.
//
// Errors are gRPC statuses (google.golang.org/grpc/status) with grpc-go's codes for
// the same events: Unavailable for a connection that cannot be made or is lost,
// DeadlineExceeded, Canceled, the server's own status, Internal for a malformed answer.
//
// Not supported, by design: TLS, compression (none is asked for, and a compressed
// answer is refused), streaming calls, name resolution beyond the dialler's, proxies,
// interceptors and stats handlers (the registry keeps grpc-go where it traces).
package grpclite

import (
	"context"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Options configure a Client.
type Options struct {
	// Timeout bounds each call (required): its deadline, and the grpc-timeout sent.
	Timeout time.Duration
	// MaxRecvSize bounds an answer's message (default 4 MiB, grpc-go's default).
	MaxRecvSize int
	// Dial makes the connection (default: TCP, net.Dialer).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// DialTimeout bounds the dial and the peer's first SETTINGS (default 20 s).
	DialTimeout time.Duration
	// UserAgent is sent as user-agent (default "sipreg-grpclite").
	UserAgent string
	// Marshal appends a request's bytes to b (default: proto.MarshalOptions's
	// MarshalAppend). A hand-made encoder of a hot message goes here.
	Marshal func(b []byte, req proto.Message) ([]byte, error)
	// MaxBackoff is the longest wait before dialling again after a failed dial, during
	// which calls fail at once (default 2 s; the first wait is 100 ms, then ×1.6).
	MaxBackoff time.Duration
}

const (
	defaultMaxRecv     = 4 << 20
	defaultDialTimeout = 20 * time.Second
	defaultMaxBackoff  = 2 * time.Second
	firstBackoff       = 100 * time.Millisecond
)

// Client makes unary calls to one address. It is safe for concurrent use.
type Client struct {
	addr string
	o    Options

	mu      sync.Mutex
	cur     *conn
	conns   map[*conn]struct{} // open: cur, and those going away with calls under way
	dialing *dialAttempt       // the dial under way
	lastErr error              // of the last failed dial
	retryAt time.Time          // no dial before it, after a failure
	backoff time.Duration
	closed  bool

	// maxStreamID is the last stream ID a connection uses before it is replaced (tests
	// lower it).
	maxStreamID uint32
}

// New returns a client of addr; it connects on the first call.
func New(addr string, o Options) *Client {
	if o.MaxRecvSize <= 0 {
		o.MaxRecvSize = defaultMaxRecv
	}
	if o.Dial == nil {
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = "sipreg-grpclite"
	}
	if o.Marshal == nil {
		o.Marshal = appendProto
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultDialTimeout
	}
	return &Client{addr: addr, o: o, maxStreamID: 1<<31 - 1, conns: make(map[*conn]struct{})}
}

// Method is one method of the service, its header block encoded once.
type Method struct {
	c     *Client
	block []byte
}

// Method returns the method whose full name is name ("/package.Service/Method").
func (c *Client) Method(name string) *Method {
	return &Method{c: c, block: headerBlock(name, c.addr, c.o.UserAgent, c.o.Timeout)}
}

// Unmarshaler decodes an answer's message; the bytes are only valid during the call.
type Unmarshaler interface {
	Unmarshal(b []byte) error
}

// Call sends req and decodes the answer's message into resp. The error is a gRPC
// status (see the package documentation).
func (m *Method) Call(ctx context.Context, req proto.Message, resp Unmarshaler) error {
	msg, err := marshal(req, m.c.o.Marshal)
	if err != nil {
		return err
	}
	defer putBuf(msg)
	var local time.Time // of the first attempt that never left the client
	for attempt := 0; ; attempt++ {
		cn, err := m.c.conn(ctx)
		if err != nil {
			return err
		}
		err = cn.call(ctx, m.block, *msg, resp)
		// A call that never left the client is sent on the next connection, as often as
		// it takes within its timeout (grpc-go's transparent retry does the same).
		if err == errNoNewCalls {
			if local.IsZero() {
				local = time.Now()
			}
			if time.Since(local) < m.c.o.Timeout {
				attempt--
				continue
			}
		}
		// A call the server never processed (refused, or left out by a GOAWAY) is
		// sent again once, as grpc-go does transparently.
		if attempt == 0 && isUnprocessed(err) {
			continue
		}
		return err
	}
}

// conn returns a connection fit for a new call, dialling one when there is none. The
// dial runs on its own: a call waits for it within its context and timeout.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	var expired <-chan time.Time // the call's timeout, made when it first waits for a dial
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, errClientClosed
		}
		if c.cur != nil && c.cur.usable() {
			cn := c.cur
			c.mu.Unlock()
			return cn, nil
		}
		d := c.dialing
		if d == nil {
			if time.Now().Before(c.retryAt) {
				err := c.lastErr
				c.mu.Unlock()
				return nil, newError(codes.Unavailable, "grpclite: connection to "+c.addr+" failed (waiting before dialling again)", err)
			}
			d = &dialAttempt{done: make(chan struct{})}
			c.dialing = d
			go c.dialFor(d)
		}
		c.mu.Unlock()
		if expired == nil {
			t := time.NewTimer(c.o.Timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, fromContext(ctx.Err())
		case <-expired:
			return nil, errDeadline
		}
		if d.err != nil {
			return nil, newError(codes.Unavailable, "grpclite: connection to "+c.addr+" failed", d.err)
		}
		c.mu.Lock()
	}
}

// dialAttempt is a dial under way; err is set, when it fails, before done is closed.
type dialAttempt struct {
	done chan struct{}
	err  error
}

// dialFor dials for d and makes the connection the current one.
func (c *Client) dialFor(d *dialAttempt) {
	cn, err := c.dial()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialing, d.err = nil, err
	close(d.done)
	if err != nil {
		c.lastErr = err
		c.backoff = nextBackoff(c.backoff, c.o.MaxBackoff)
		c.retryAt = time.Now().Add(c.backoff)
		return
	}
	if c.closed {
		cn.close(errClientClosed)
		return
	}
	c.backoff, c.lastErr = 0, nil
	c.cur = cn
	cn.mu.Lock()
	if cn.err == nil { // else its reader ended (and forgot it) already
		c.conns[cn] = struct{}{}
	}
	cn.mu.Unlock()
}

// nextBackoff is the wait after a failed dial that followed a wait of prev.
func nextBackoff(prev, limit time.Duration) time.Duration {
	next := firstBackoff
	if prev > 0 {
		next = prev * 8 / 5
	}
	return min(next, limit)
}

// dial connects and exchanges the prefaces (see newConn).
func (c *Client) dial() (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.DialTimeout)
	defer cancel()
	nc, err := c.o.Dial(ctx, c.addr)
	if err != nil {
		return nil, err
	}
	cn, err := newConn(nc, c, time.Now().Add(c.o.DialTimeout))
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return cn, nil
}

// Close closes the connections (with those going away); calls under way fail with
// Canceled, and later ones too.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.cur, c.conns = nil, nil
	c.mu.Unlock()
	for cn := range conns {
		cn.close(errClientClosed)
	}
	return nil
}

// forget drops cn, whose reader ended, from the open connections.
func (c *Client) forget(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
}
