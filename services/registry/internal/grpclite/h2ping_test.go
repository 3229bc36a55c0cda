package grpclite

import (
	"context"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// isPing matches the client's PINGs (not acks) on connection conn.
func isPing(conn int) func(f h2frame) bool {
	return func(f h2frame) bool {
		return f.conn == conn && f.typ == http2.FramePing && !f.flags.Has(http2.FlagPingAck)
	}
}

// TestDeadPeerIsDropped: a call past its deadline makes the client PING the peer; a
// peer that never acks (gone without closing the connection) has its connection
// closed once the PING's timeout passes, and the next call dials again and succeeds.
func TestDeadPeerIsDropped(t *testing.T) {
	s := startH2(t, h2config{noPingAck: true, handle: func(r *h2req) {
		if r.c.idx > 0 {
			answerConn(r) // the first connection never answers
		}
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 100 * time.Millisecond})
	m := sendMessage(c)
	_, err := do(context.Background(), m, "lost")
	wantCode(t, err, codes.DeadlineExceeded)
	s.waitFor("the liveness PING", func(log []h2frame) bool { return count(log, isPing(0)) == 1 })
	s.waitFor("the silent connection closed by the client", func(log []h2frame) bool {
		return count(log, func(f h2frame) bool { return f.closed && f.conn == 0 }) == 1
	})
	got, err := do(context.Background(), m, "next")
	if err != nil || got != "conn1" {
		t.Fatalf("the call after: %q, %v; want an answer on a new connection", got, err)
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

// TestAnsweredPingKeepsTheConnection: a peer that acks the liveness PING keeps its
// connection: the next call goes on it; and the next expiry, within pingEvery of the
// ack, sends no PING.
func TestAnsweredPingKeepsTheConnection(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) {
		if r.callID() != "slow" {
			answerConn(r)
		}
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 100 * time.Millisecond})
	m := sendMessage(c)
	_, err := do(context.Background(), m, "slow")
	wantCode(t, err, codes.DeadlineExceeded)
	s.waitFor("the liveness PING", func(log []h2frame) bool { return count(log, isPing(0)) == 1 })
	// The ack clears the PING (bounded poll of the client's own state).
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	for limit := time.Now().Add(10 * time.Second); ; {
		cn.mu.Lock()
		cleared := cn.pingAt.IsZero() && cn.err == nil
		cn.mu.Unlock()
		if cleared {
			break
		}
		if time.Now().After(limit) {
			t.Fatal("the PING's ack did not clear it")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := do(context.Background(), m, "next"); err != nil || got != "conn0" {
		t.Fatalf("the call after: %q, %v; want an answer on the same connection", got, err)
	}
	// Another expiry within pingEvery of the ack sends no PING: the sweep that ended
	// the call decided under the lock the test takes next.
	_, err = do(context.Background(), m, "slow")
	wantCode(t, err, codes.DeadlineExceeded)
	cn.mu.Lock()
	again := !cn.pingAt.IsZero()
	cn.mu.Unlock()
	if again {
		t.Fatal("a second PING within pingEvery of the first one's ack")
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}
