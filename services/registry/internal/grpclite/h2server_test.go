package grpclite

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2server is a scripted HTTP/2 server built on the http2 Framer: it does the
// handshake, gives the client's flow-control windows back as it reads, keeps to the
// client's windows when it sends, records every frame it reads, and hands each complete
// request to handle (in a goroutine of its own).
type h2server struct {
	t        testing.TB
	lis      net.Listener
	cfg      h2config
	done     chan struct{} // closed when the test ends
	accepted atomic.Int32
	wg       sync.WaitGroup

	mu      sync.Mutex
	log     []h2frame
	conns   []*h2conn
	changed chan struct{} // closed (and made anew) when log changes
}

type h2config struct {
	settings []http2.Setting                 // the server's SETTINGS
	first    func(c *h2conn)                 // when set, written instead of the SETTINGS (a broken server)
	handle   func(r *h2req)                  // a request whose END_STREAM arrived
	ignore   func(c *h2conn, id uint32) bool // streams dropped without a trace (after a GOAWAY)
	// noPingAck: the server leaves PINGs unanswered (a peer gone without closing the
	// connection); else it acks them, as HTTP/2 servers do.
	noPingAck bool
}

// h2frame is what the server saw: a frame, or (closed) the end of a connection.
type h2frame struct {
	conn   int
	typ    http2.FrameType
	stream uint32
	flags  http2.Flags
	code   http2.ErrCode // RST_STREAM, GOAWAY
	inc    uint32        // WINDOW_UPDATE
	ping   [8]byte
	length int
	closed bool
}

// h2req is one request as the server received it.
type h2req struct {
	c      *h2conn
	id     uint32
	fields []hpack.HeaderField
	body   []byte
}

func startH2(t testing.TB, cfg h2config) *h2server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &h2server{t: t, lis: lis, cfg: cfg, done: make(chan struct{}), changed: make(chan struct{})}
	s.wg.Go(s.accept)
	t.Cleanup(func() {
		close(s.done)
		_ = lis.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.shut()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *h2server) addr() string { return s.lis.Addr().String() }

// conn is the server's i-th connection.
func (s *h2server) conn(i int) *h2conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[i]
}

func (s *h2server) accept() {
	for {
		nc, err := s.lis.Accept()
		if err != nil {
			return
		}
		c := &h2conn{s: s, nc: nc, send: map[uint32]int64{}, recv: map[uint32]int64{},
			reset: map[uint32]bool{}, sendConn: defaultWindow, sendInit: defaultWindow, recvInit: defaultWindow, recvConn: defaultWindow}
		c.cond.L = &c.mu
		c.fr = http2.NewFramer(nc, nc)
		c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		c.enc = hpack.NewEncoder(&c.hbuf)
		for _, st := range s.cfg.settings {
			if st.ID == http2.SettingInitialWindowSize {
				c.recvInit = int64(st.Val)
			}
		}
		s.mu.Lock()
		c.idx = len(s.conns)
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.accepted.Add(1)
		s.wg.Go(c.serve)
	}
}

func (s *h2server) record(f h2frame) {
	s.mu.Lock()
	s.log = append(s.log, f)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitFor waits until ok holds for the frames seen (10 s at most: then the test fails).
func (s *h2server) waitFor(what string, ok func(log []h2frame) bool) {
	s.t.Helper()
	limit := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		done, ch := ok(s.log), s.changed
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-limit:
			s.t.Fatalf("the server never saw %s", what)
		}
	}
}

// seen counts the frames seen that match.
func (s *h2server) seen(match func(f h2frame) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return count(s.log, match)
}

func count(log []h2frame, match func(f h2frame) bool) int {
	n := 0
	for _, f := range log {
		if match(f) {
			n++
		}
	}
	return n
}

func isRST(id uint32, code http2.ErrCode) func(f h2frame) bool {
	return func(f h2frame) bool { return f.typ == http2.FrameRSTStream && f.stream == id && f.code == code }
}

// h2conn is one connection of the server.
type h2conn struct {
	s    *h2server
	idx  int
	nc   net.Conn
	fr   *http2.Framer // read by serve; written under wmu
	wmu  sync.Mutex
	enc  *hpack.Encoder
	hbuf bytes.Buffer

	mu         sync.Mutex
	cond       sync.Cond
	sendConn   int64            // what the server may still send on the connection
	sendInit   int64            // the client's SETTINGS_INITIAL_WINDOW_SIZE
	send       map[uint32]int64 // per stream
	recvInit   int64            // the server's SETTINGS_INITIAL_WINDOW_SIZE
	recv       map[uint32]int64 // what the client may still send, per stream
	recvConn   int64            // and on the connection
	reset      map[uint32]bool
	open       int // streams open (request received, no END_STREAM sent, not reset)
	maxOpen    int
	violations int // DATA beyond the server's windows
	closed     bool
}

func (c *h2conn) shut() {
	_ = c.nc.Close()
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *h2conn) serve() {
	defer func() {
		c.shut()
		c.s.record(h2frame{conn: c.idx, closed: true})
	}()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.nc, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	if c.s.cfg.first != nil {
		c.s.cfg.first(c)
	} else {
		c.write(func(fr *http2.Framer) error { return fr.WriteSettings(c.s.cfg.settings...) })
	}
	reqs := map[uint32]*h2req{}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		h := h2frame{conn: c.idx, typ: f.Header().Type, stream: f.Header().StreamID, flags: f.Header().Flags, length: int(f.Header().Length)}
		var ready *h2req
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
					c.mu.Lock()
					for id := range c.send {
						c.send[id] += int64(v) - c.sendInit
					}
					c.sendInit = int64(v)
					c.cond.Broadcast()
					c.mu.Unlock()
				}
				c.write((*http2.Framer).WriteSettingsAck)
			}
		case *http2.MetaHeadersFrame:
			if c.s.cfg.ignore != nil && c.s.cfg.ignore(c, f.StreamID) {
				break
			}
			r := &h2req{c: c, id: f.StreamID, fields: f.Fields}
			reqs[r.id] = r
			c.mu.Lock()
			c.send[r.id], c.recv[r.id] = c.sendInit, c.recvInit
			c.open++
			c.maxOpen = max(c.maxOpen, c.open)
			c.mu.Unlock()
			if f.StreamEnded() {
				ready = r
			}
		case *http2.DataFrame:
			n := int64(f.Length)
			c.mu.Lock()
			if c.recvConn < n {
				c.violations++
			}
			if _, ok := c.recv[f.StreamID]; ok {
				if c.recv[f.StreamID] -= n; c.recv[f.StreamID] < 0 {
					c.violations++
				}
				c.recv[f.StreamID] += n // given back below
			}
			c.mu.Unlock()
			if n > 0 {
				c.write(func(fr *http2.Framer) error {
					err := fr.WriteWindowUpdate(0, uint32(n))
					if err == nil && !f.StreamEnded() {
						err = fr.WriteWindowUpdate(f.StreamID, uint32(n))
					}
					return err
				})
			}
			if r := reqs[f.StreamID]; r != nil {
				r.body = append(r.body, f.Data()...)
				if f.StreamEnded() {
					ready = r
				}
			}
		case *http2.WindowUpdateFrame:
			h.inc = f.Increment
			c.mu.Lock()
			if f.StreamID == 0 {
				c.sendConn += int64(f.Increment)
			} else if _, ok := c.send[f.StreamID]; ok {
				c.send[f.StreamID] += int64(f.Increment)
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		case *http2.RSTStreamFrame:
			h.code = f.ErrCode
			delete(reqs, f.StreamID)
			c.mu.Lock()
			if !c.reset[f.StreamID] {
				c.reset[f.StreamID] = true
				c.open--
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		case *http2.PingFrame:
			h.ping = f.Data
			if data := f.Data; !f.IsAck() && !c.s.cfg.noPingAck {
				c.write(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
			}
		case *http2.GoAwayFrame:
			h.code = f.ErrCode
		}
		c.s.record(h)
		if ready != nil {
			delete(reqs, ready.id)
			if c.s.cfg.handle != nil {
				c.s.wg.Go(func() { c.s.cfg.handle(ready) })
			}
		}
	}
}
