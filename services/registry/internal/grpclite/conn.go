package grpclite

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// The client's side of flow control: what the peer may send before our WINDOW_UPDATE.
const (
	streamWindow  = 1 << 20  // SETTINGS_INITIAL_WINDOW_SIZE announced
	connWindow    = 16 << 20 // the connection's window, raised at the start
	streamUpdate  = 32 << 10 // a stream's consumed bytes are given back from here (below the default 64 KiB, which holds until our SETTINGS are acknowledged)
	connUpdate    = connWindow / 4
	maxHeaderList = 1 << 20
	defaultWindow = 65535 // RFC 9113 initial windows
	defaultFrame  = 16384 // RFC 9113 initial SETTINGS_MAX_FRAME_SIZE
)

// conn is one HTTP/2 connection and the calls on it.
//
// Locks: wmu serialises writes (the framer's write side, bw); mu guards the state
// below it. A writer may take mu while holding wmu, never the reverse; nobody waits for
// flow control while holding wmu, so the reader, which takes wmu only to write its own
// control frames, always gets to the WINDOW_UPDATE that lets a writer go on.
type conn struct {
	c   *Client
	nc  net.Conn
	fr  *http2.Framer  // read by the reader goroutine only; written under wmu
	hd  *headerDecoder // the reader's: decodes the header blocks fr reads
	bw  *bufio.Writer
	wmu sync.Mutex
	// flushing: a flush is asked of the flusher and not begun (under wmu). Writers
	// leave their frames in bw and ask for a flush; the frames of the calls written
	// before the flusher gets to run leave in one write.
	flushing bool
	flush    chan struct{} // asks the flusher (capacity 1)
	done     chan struct{} // closed when the connection ends: the flusher stops
	draining atomic.Bool   // no new calls (GOAWAY, stream IDs used up, closed)
	timeout  time.Duration
	sweep    *time.Timer

	mu          sync.Mutex
	cond        sync.Cond
	streams     map[uint32]*stream
	active      uint32 // calls holding a slot (streams, and slots reserved before a stream ID)
	nextID      uint32
	maxStreams  uint32
	sendWindow  int64
	initWindow  int64
	maxFrame    int
	recvUnacked int64
	err         *callError // why the connection ended
	sweepArmed  bool
	waiters     int // goroutines waiting on cond
	// pingAt: when the liveness PING sent after a call's deadline left (zero: none
	// outstanding); pingData is its payload, which the ack must carry.
	pingAt   time.Time
	pingData [8]byte
	// ackedAt: when the last liveness PING was acked; the next waits pingEvery.
	ackedAt time.Time
}

// stream is one call on a connection. Pooled: a stream is reused only once it is out
// of the map and its done value was taken.
type stream struct {
	id          uint32
	start       time.Time
	done        chan struct{} // gets one value when finished
	finished    bool
	err         *callError
	buf         []byte // the answer's DATA
	gotHeaders  bool
	sendWindow  int64
	recvUnacked int64
}

var streams = sync.Pool{New: func() any { return &stream{done: make(chan struct{}, 1)} }}

func getStream() *stream {
	s := streams.Get().(*stream)
	s.start = time.Now()
	return s
}

func putStream(s *stream) {
	buf := s.buf[:0]
	if cap(buf) > 64<<10 {
		buf = nil
	}
	*s = stream{done: s.done, buf: buf}
	streams.Put(s)
}

// newConn writes the client preface, its SETTINGS and the connection window, reads the
// server's SETTINGS (before deadline) and starts the reader.
func newConn(nc net.Conn, c *Client, deadline time.Time) (*conn, error) {
	cn := &conn{
		c: c, nc: nc, timeout: c.o.Timeout,
		bw:    bufio.NewWriterSize(nc, 32<<10),
		flush: make(chan struct{}, 1), done: make(chan struct{}),
		streams: make(map[uint32]*stream), nextID: 1, maxStreams: ^uint32(0),
		sendWindow: defaultWindow, initWindow: defaultWindow, maxFrame: defaultFrame,
	}
	cn.cond.L = &cn.mu
	cn.fr = http2.NewFramer(cn.bw, bufio.NewReaderSize(nc, 32<<10))
	cn.fr.SetReuseFrames()
	cn.hd = newHeaderDecoder(cn.fr) // header blocks: headers.go, not the framer's ReadMetaHeaders
	cn.fr.SetMaxReadFrameSize(defaultFrame)
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	_, _ = cn.bw.WriteString(http2.ClientPreface)
	_ = cn.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList})
	_ = cn.fr.WriteWindowUpdate(0, connWindow-defaultWindow)
	if err := cn.bw.Flush(); err != nil {
		return nil, err
	}
	f, err := cn.fr.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("reading the server's SETTINGS: %w", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return nil, fmt.Errorf("the server's first frame is %v, not SETTINGS", f.Header().Type)
	}
	cn.settings(sf)
	if err := cn.fr.WriteSettingsAck(); err != nil {
		return nil, err
	}
	if err := cn.bw.Flush(); err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	cn.sweep = time.AfterFunc(time.Hour, cn.sweepExpired)
	cn.sweep.Stop()
	go cn.read()
	go cn.flusher()
	return cn, nil
}

// usable reports whether the connection takes new calls.
func (cn *conn) usable() bool { return !cn.draining.Load() }

// sweepEvery is how often calls are checked against their deadline while any is open:
// a call ends between its timeout and a sweep later.
func (cn *conn) sweepEvery() time.Duration {
	return min(100*time.Millisecond, max(cn.timeout/20, time.Millisecond))
}

// call sends one call and waits for its end (see Method.Call).
func (cn *conn) call(ctx context.Context, block, msg []byte, resp Unmarshaler) error {
	s := getStream()
	if err := cn.send(ctx, s, block, msg); err != nil {
		putStream(s)
		return err
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		cn.cancel(s, fromContext(ctx.Err()))
		<-s.done
	}
	var err error
	if s.err != nil {
		err = s.err
	} else {
		err = decode(s.buf, resp, cn.c.o.MaxRecvSize)
	}
	putStream(s)
	return err
}

// decode checks that buf holds exactly one uncompressed message and unmarshals it.
func decode(buf []byte, resp Unmarshaler, maxRecv int) error {
	if len(buf) < prefixLen {
		return newError(codes.Internal, "grpclite: the answer holds no message", nil)
	}
	if buf[0] != 0 {
		return newError(codes.Internal, fmt.Sprintf("grpclite: the answer's message has flags %#x (compressed, while no compression was asked for)", buf[0]), nil)
	}
	n := binary.BigEndian.Uint32(buf[1:prefixLen])
	switch {
	case int64(n) > int64(maxRecv):
		return newError(codes.ResourceExhausted, fmt.Sprintf("grpclite: received message larger than max (%d vs. %d)", n, maxRecv), nil)
	case len(buf)-prefixLen < int(n):
		return newError(codes.Internal, "grpclite: the answer's message is cut short", nil)
	case len(buf)-prefixLen > int(n):
		return newError(codes.Internal, "grpclite: the answer holds more than one message", nil)
	}
	if err := resp.Unmarshal(buf[prefixLen:]); err != nil {
		return newError(codes.Internal, "grpclite: failed to unmarshal the received message", err)
	}
	return nil
}

// send takes a slot, registers s under a new stream ID and writes its frames.
func (cn *conn) send(ctx context.Context, s *stream, block, msg []byte) error {
	cn.mu.Lock()
	for cn.err == nil && !cn.draining.Load() && cn.active >= cn.maxStreams {
		if err := cn.waitLocked(ctx, s); err != nil {
			cn.mu.Unlock()
			return err
		}
	}
	if cn.err != nil || cn.draining.Load() {
		cn.mu.Unlock()
		return errNoNewCalls
	}
	cn.active++
	cn.mu.Unlock()

	cn.wmu.Lock()
	cn.mu.Lock()
	// Draining: a GOAWAY came after the slot was taken; a stream opened now would be
	// above its last stream ID, and ignored.
	if cn.err != nil || cn.draining.Load() || cn.nextID > cn.c.maxStreamID {
		cn.draining.Store(true)
		cn.releaseLocked()
		cn.mu.Unlock()
		cn.endWrite(nil)
		return errNoNewCalls
	}
	s.id = cn.nextID
	cn.nextID += 2
	if cn.nextID > cn.c.maxStreamID {
		cn.draining.Store(true) // the next call dials a new connection
	}
	s.sendWindow = cn.initWindow
	cn.streams[s.id] = s
	cn.armSweepLocked()
	// The usual case: the whole message fits the windows and one frame.
	whole := len(msg) <= cn.maxFrame && int64(len(msg)) <= cn.sendWindow && int64(len(msg)) <= s.sendWindow
	if whole {
		cn.sendWindow -= int64(len(msg))
		s.sendWindow -= int64(len(msg))
	}
	cn.mu.Unlock()
	err := cn.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: block, EndHeaders: true})
	if err == nil && whole {
		err = cn.fr.WriteData(s.id, true, msg)
	}
	if err = cn.endWrite(err); err != nil || whole {
		return nil // a failed write ended the connection, and s with it
	}
	return cn.sendData(ctx, s, msg)
}

// waitLocked waits on cond for a change (a slot, a window), and fails when the call's
// context or timeout ran out meanwhile (the sweep wakes waiters on each pass).
func (cn *conn) waitLocked(ctx context.Context, s *stream) *callError {
	cn.waiters++
	cn.armSweepLocked()
	cn.cond.Wait()
	cn.waiters--
	if err := ctx.Err(); err != nil {
		return fromContext(err)
	}
	if time.Since(s.start) >= cn.timeout {
		return errDeadline
	}
	return nil
}

var errDeadline = newError(codes.DeadlineExceeded, "context deadline exceeded", nil)

// signalLocked wakes the goroutines waiting on cond.
func (cn *conn) signalLocked() {
	if cn.waiters > 0 {
		cn.cond.Broadcast()
	}
}

// finishLocked ends s with err (nil: the answer is complete); false when it had ended.
func (cn *conn) finishLocked(s *stream, err *callError) bool {
	if s.finished {
		return false
	}
	s.finished, s.err = true, err
	if s.id != 0 {
		delete(cn.streams, s.id)
	}
	s.done <- struct{}{}
	cn.releaseLocked()
	return true
}

// releaseLocked gives a call's slot back; the last call of a connection that takes no
// new ones closes it (the reader ends with it).
func (cn *conn) releaseLocked() {
	cn.active--
	cn.signalLocked()
	if cn.active == 0 && cn.draining.Load() {
		_ = cn.nc.Close()
	}
}

// cancel ends s with err and resets its stream.
func (cn *conn) cancel(s *stream, err *callError) {
	cn.mu.Lock()
	ended := cn.finishLocked(s, err)
	id := s.id
	cn.mu.Unlock()
	if ended && id != 0 {
		cn.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
}

// close ends the connection and every call on it with err (the first error stays).
func (cn *conn) close(err *callError) {
	cn.draining.Store(true)
	cn.mu.Lock()
	if cn.err == nil {
		cn.err = err
		close(cn.done)
	}
	for _, s := range cn.streams {
		cn.finishLocked(s, cn.err)
	}
	cn.cond.Broadcast()
	cn.mu.Unlock()
	if cn.sweep != nil {
		cn.sweep.Stop()
	}
	_ = cn.nc.Close()
}
