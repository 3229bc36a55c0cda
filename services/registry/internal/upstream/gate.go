package upstream

import (
	"context"
	"errors"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ErrWriteGateClosed is the error of a write refused by WithWriteGate.
var ErrWriteGateClosed = errors.New("write refused: this replica holds no valid lease")

// WithWriteGate refuses every write on the connection while open returns false. With
// several replicas, open is the cluster's SendWindowOpen: a replica paused between its
// lease check and the write of a REGISTER (a SIGSTOP, a long GC) resumes with its
// leases run out, and the bytes never leave (the call fails, the connection is closed).
// Reconnection backs off briefly (at most 2 s), so a replica that holds leases again
// sends again promptly.
func WithWriteGate(open func() bool) DialOption {
	return func(c *dialConfig) {
		c.gate = open
		c.grpc = append(c.grpc,
			grpc.WithContextDialer(gatedDial(open)),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
				MinConnectTimeout: 5 * time.Second,
			}))
	}
}

// gatedDial dials TCP connections whose writes pass only while open says so (all of
// them when open is nil).
func gatedDial(open func() bool) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil || open == nil {
			return conn, err
		}
		return gatedConn{Conn: conn, open: open}, nil
	}
}

// gatedConn is a connection whose writes pass only while open says so.
type gatedConn struct {
	net.Conn
	open func() bool
}

func (g gatedConn) Write(b []byte) (int, error) {
	if !g.open() {
		_ = g.Conn.Close()
		return 0, ErrWriteGateClosed
	}
	return g.Conn.Write(b)
}
