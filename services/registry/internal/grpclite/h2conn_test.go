package grpclite

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// answerConn answers every request with "conn<n>", n the server's connection.
func answerConn(r *h2req) { r.answer(reply("conn" + strconv.Itoa(r.c.idx))) }

// holdFirstConn starts a server that holds the calls of its first connection (up to n,
// handed to the test) and answers those of the others with answerConn.
func holdFirstConn(t *testing.T, n int) (*h2server, chan *h2req) {
	held := make(chan *h2req, n)
	s := startH2(t, h2config{handle: func(r *h2req) {
		if r.c.idx == 0 {
			held <- r
			return
		}
		answerConn(r)
	}})
	return s, held
}

func TestGoAwaySendsTheCallsAboveAgain(t *testing.T) {
	s, held := holdFirstConn(t, 2)
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	got := make(chan string, 2)
	for _, id := range []string{"a", "b"} {
		go func() {
			phrase, err := do(context.Background(), m, id)
			if err != nil {
				phrase = err.Error()
			}
			got <- phrase
		}()
	}
	lo, hi := <-held, <-held
	if lo.id > hi.id {
		lo, hi = hi, lo
	}
	lo.c.write(func(fr *http2.Framer) error { return fr.WriteGoAway(lo.id, http2.ErrCodeNo, nil) })
	lo.answer(reply("conn0"))
	answers := map[string]bool{<-got: true, <-got: true}
	if !answers["conn0"] || !answers["conn1"] {
		t.Fatalf("answers %v, want one from the first connection (below the GOAWAY's last stream) and one from a new one", answers)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials, want 2", n)
	}
	s.waitFor("the client closing the connection that went away", func(log []h2frame) bool {
		return count(log, func(f h2frame) bool { return f.closed && f.conn == 0 }) == 1
	})
}

// A call that took a slot just before the GOAWAY, and its stream ID just after,
// must not be sent on the connection that went away (its server ignores it).
func TestGoAwayBetweenSlotAndStreamID(t *testing.T) {
	var gone atomic.Bool
	s := startH2(t, h2config{
		handle: answerConn,
		ignore: func(c *h2conn, id uint32) bool { return c.idx == 0 && gone.Load() && id > 1 },
	})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 2 * time.Second})
	m := sendMessage(c)
	if _, err := do(context.Background(), m, "first"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	cn.wmu.Lock() // the next call stops between its slot and its stream ID
	got := make(chan error, 1)
	var phrase string
	go func() {
		var err error
		phrase, err = do(context.Background(), m, "second")
		got <- err
	}()
	eventually(t, "the call taking a slot", func() bool { cn.mu.Lock(); defer cn.mu.Unlock(); return cn.active == 1 })
	gone.Store(true)
	s.conn(0).write(func(fr *http2.Framer) error { return fr.WriteGoAway(1, http2.ErrCodeNo, nil) })
	eventually(t, "the client reading the GOAWAY", cn.draining.Load)
	cn.wmu.Unlock()
	if err := <-got; err != nil || phrase != "conn1" {
		t.Fatalf("got %q, %v; want the answer of a new connection", phrase, err)
	}
}

func TestSmallInitialWindow(t *testing.T) {
	s := startH2(t, h2config{
		settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 3}, {ID: http2.SettingMaxConcurrentStreams, Val: 2}},
		handle:   func(r *h2req) { r.answer(reply(r.callID())) },
	})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			id := strings.Repeat(strconv.Itoa(i), 200)
			if got, err := do(context.Background(), m, id); err != nil || got != id {
				t.Errorf("call %d: %.20q…, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	sc := s.conn(0)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.violations != 0 {
		t.Errorf("the client sent %d DATA frames beyond the server's windows", sc.violations)
	}
	if sc.maxOpen > 2 {
		t.Errorf("%d streams open at once, above the server's MAX_CONCURRENT_STREAMS of 2", sc.maxOpen)
	}
	if n := s.seen(func(f h2frame) bool { return f.typ == http2.FrameData }); n < 5*200/3 {
		t.Errorf("%d DATA frames for 5 requests of over 200 bytes in windows of 3", n)
	}
}

func TestLargeAnswersFlowControl(t *testing.T) {
	// 3 × 6 MiB: beyond the stream's window of 1 MiB, and the connection's of 16 MiB.
	big := strings.Repeat("a", 6<<20)
	s := startH2(t, h2config{handle: func(r *h2req) { r.answer(reply(big)) }})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 20 * time.Second, MaxRecvSize: 8 << 20})
	m := sendMessage(c)
	for i := range 3 {
		if got, err := do(context.Background(), m, "x"); err != nil || got != big {
			t.Fatalf("call %d: %d bytes, %v", i, len(got), err)
		}
	}
	for _, id := range []uint32{0, 1, 3, 5} {
		if n := s.seen(func(f h2frame) bool { return f.typ == http2.FrameWindowUpdate && f.stream == id }); n < 2 {
			t.Errorf("%d WINDOW_UPDATEs for stream %d", n, id)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

func TestConnectionLostMidCall(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) {
		if r.c.idx == 0 {
			_ = r.c.nc.Close()
			return
		}
		answerConn(r)
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	_, err := do(context.Background(), m, "x")
	wantCode(t, err, codes.Unavailable)
	if got, err := do(context.Background(), m, "y"); err != nil || got != "conn1" {
		t.Fatalf("the next call: %q, %v", got, err)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials, want 2", n)
	}
}

func TestFirstFrameNotSettings(t *testing.T) {
	s := startH2(t, h2config{first: func(c *h2conn) {
		c.write(func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{}) })
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second, MaxBackoff: time.Minute})
	m := sendMessage(c)
	before := time.Now()
	_, err := do(context.Background(), m, "x")
	wantCode(t, err, codes.Unavailable)
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
	// The first wait is 100 ms from the failure, which came after before.
	within := time.Now().Before(before.Add(firstBackoff))
	_, err = do(context.Background(), m, "y")
	wantCode(t, err, codes.Unavailable)
	if within && dials.Load() != 1 {
		t.Fatal("a call within the backoff dialled")
	}
	// After the wait, a call dials again (and fails the same way).
	eventually(t, "a dial after the backoff", func() bool {
		_, err := do(context.Background(), m, "z")
		wantCode(t, err, codes.Unavailable)
		return dials.Load() >= 2
	})
}

func TestCloseEndsTheCalls(t *testing.T) {
	held := make(chan *h2req, 3)
	s := startH2(t, h2config{handle: func(r *h2req) { held <- r }})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	errs := make(chan error, 3)
	for range 3 {
		go func() { _, err := do(context.Background(), m, "x"); errs <- err }()
	}
	for range 3 {
		<-held
	}
	_ = c.Close()
	for range 3 {
		wantCode(t, <-errs, codes.Canceled)
	}
	_, err := do(context.Background(), m, "after")
	wantCode(t, err, codes.Canceled)
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

// A call on a connection that went away (below the GOAWAY's last stream, so still
// under way there) while a newer connection serves the new calls.
func TestCloseEndsTheCallsOfAConnectionGoingAway(t *testing.T) {
	s, held := holdFirstConn(t, 1)
	c, _ := liteClient(t, s.addr(), Options{Timeout: 5 * time.Second})
	m := sendMessage(c)
	errs := make(chan error, 1)
	go func() { _, err := do(context.Background(), m, "old"); errs <- err }()
	r := <-held
	r.c.write(func(fr *http2.Framer) error { return fr.WriteGoAway(r.id, http2.ErrCodeNo, nil) })
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	eventually(t, "the client reading the GOAWAY", cn.draining.Load)
	if got, err := do(context.Background(), m, "new"); err != nil || got != "conn1" {
		t.Fatalf("a call after the GOAWAY: %q, %v", got, err)
	}
	_ = c.Close()
	wantCode(t, <-errs, codes.Canceled)
}

func TestStreamIDsUsedUp(t *testing.T) {
	s := startH2(t, h2config{handle: answerConn})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	c.maxStreamID = 7 // 4 calls a connection
	m := sendMessage(c)
	for i := range 10 {
		if got, err := do(context.Background(), m, "x"); err != nil || got != "conn"+strconv.Itoa(i/4) {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d dials, want 3", n)
	}
	s.waitFor("the client closing the connections it used up", func(log []h2frame) bool {
		return count(log, func(f h2frame) bool { return f.closed }) == 2
	})
}

func TestStreamIDsUsedUpConcurrently(t *testing.T) {
	s := startH2(t, h2config{handle: answerConn})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	c.maxStreamID = 3
	m := sendMessage(c)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if _, err := do(context.Background(), m, "x"); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	// Every connection but the last is used up, and its calls ended: the client closes it.
	s.waitFor("the client closing every used-up connection", func(log []h2frame) bool {
		return count(log, func(f h2frame) bool { return f.closed }) >= int(dials.Load())-1
	})
}

// A server that takes the connection and never sends its SETTINGS: the dial hangs
// (until DialTimeout), the call must not.
func silentServer(t *testing.T) (*h2server, chan struct{}) {
	accepted := make(chan struct{}, 10)
	s := startH2(t, h2config{first: func(c *h2conn) {
		accepted <- struct{}{}
		<-c.s.done
	}})
	return s, accepted
}

func TestTimeoutWhileDialling(t *testing.T) {
	s, _ := silentServer(t)
	c, _ := liteClient(t, s.addr(), Options{Timeout: 100 * time.Millisecond, DialTimeout: 5 * time.Second})
	_, err := do(context.Background(), sendMessage(c), "x")
	wantCode(t, err, codes.DeadlineExceeded)
}

func TestContextCanceledWhileDialling(t *testing.T) {
	s, accepted := silentServer(t)
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second, DialTimeout: 5 * time.Second})
	m := sendMessage(c)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for range 2 { // the call dialling, and one waiting for its dial
		go func() { _, err := do(ctx, m, "x"); errs <- err }()
	}
	<-accepted
	cancel()
	wantCode(t, <-errs, codes.Canceled)
	wantCode(t, <-errs, codes.Canceled)
}

// clientGoroutines counts the goroutines of connections (readers, flushers) and dials.
func clientGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "grpclite.(*conn).read(") || strings.Contains(g, "grpclite.(*conn).flusher(") ||
			strings.Contains(g, "grpclite.(*Client).dialFor(") {
			n++
		}
	}
	return n
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	held := make(chan *h2req, 1)
	s := startH2(t, h2config{handle: func(r *h2req) {
		if r.c.idx == 0 && r.callID() == "held" {
			held <- r
			return
		}
		answerConn(r)
	}})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	if _, err := do(context.Background(), m, "x"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() { _, err := do(context.Background(), m, "held"); errs <- err }()
	r := <-held // a connection going away with a call under way, and a new one
	r.c.write(func(fr *http2.Framer) error { return fr.WriteGoAway(r.id, http2.ErrCodeNo, nil) })
	eventually(t, "a second connection", func() bool {
		_, err := do(context.Background(), m, "x")
		return err == nil && s.accepted.Load() == 2
	})
	_ = c.Close()
	wantCode(t, <-errs, codes.Canceled)
	eventually(t, "the client's goroutines ending", func() bool { return clientGoroutines() == 0 })
}
