package grpclite

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// do makes one call of callID and answers the answer's reason phrase.
func do(ctx context.Context, m *Method, callID string) (string, error) {
	var a answer
	err := m.Call(ctx, request(callID), &a)
	return a.GetMessage().GetReasonPhrase(), err
}

// wantCode fails unless err is a gRPC status of code.
func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got %v (a status: %v), want %v", err, ok, code)
	}
}

// eventually polls cond (a condition the test can only observe by looking) for 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for limit := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(limit) {
			t.Fatalf("never: %s", what)
		}
	}
}

func TestTrailersOnlyError(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) {
		r.c.headers(r.id, true, ":status", "200", "content-type", "application/grpc",
			"grpc-status", "7", "grpc-message", "no%20way%3A 100%")
	}})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	_, err := do(context.Background(), sendMessage(c), "x")
	wantCode(t, err, codes.PermissionDenied)
	if got := status.Convert(err).Message(); got != "no way: 100%" {
		t.Fatalf("message %q, want the percent-decoded grpc-message", got)
	}
}

func TestHTTPStatusWithoutGRPCStatus(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) {
		code, body, _ := strings.Cut(r.callID(), "+")
		r.c.headers(r.id, body == "", ":status", code, "content-type", "text/html")
		if body != "" {
			r.c.data(r.id, true, []byte(body))
		}
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	for httpStatus, want := range map[string]codes.Code{
		"400": codes.Internal, "401": codes.Unauthenticated, "403": codes.PermissionDenied,
		"404": codes.Unimplemented, "429": codes.Unavailable, "502": codes.Unavailable,
		"503": codes.Unavailable, "504": codes.Unavailable, "500": codes.Unknown, "302": codes.Unknown,
		"503+<html>busy</html>": codes.Unavailable,
	} {
		_, err := do(context.Background(), m, httpStatus)
		if status.Code(err) != want {
			t.Errorf("HTTP %s: got %v, want %v", httpStatus, err, want)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: an HTTP error ends the call, not the connection", n)
	}
}

// malformed are answers the client refuses with Internal, by Call-ID.
var malformed = map[string]func(r *h2req){
	"wrong content-type": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "text/html")
		r.c.data(r.id, false, grpcMessage(0, reply("x")))
		r.c.headers(r.id, true, "grpc-status", "0")
	},
	"no trailers": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, true, grpcMessage(0, reply("x")))
	},
	"two messages": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, false, append(grpcMessage(0, reply("x")), grpcMessage(0, reply("y"))...))
		r.c.headers(r.id, true, "grpc-status", "0")
	},
	"compressed": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, false, grpcMessage(1, reply("x")))
		r.c.headers(r.id, true, "grpc-status", "0")
	},
	"no message": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.headers(r.id, true, "grpc-status", "0")
	},
	"cut short": func(r *h2req) {
		msg := grpcMessage(0, reply("xyz"))
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, false, msg[:len(msg)-2])
		r.c.headers(r.id, true, "grpc-status", "0")
	},
	"not a proto": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, false, grpcMessage(0, []byte{0xff, 0xff, 0xff}))
		r.c.headers(r.id, true, "grpc-status", "0")
	},
	"data before headers": func(r *h2req) {
		r.c.data(r.id, false, grpcMessage(0, reply("x")))
		r.c.headers(r.id, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "0")
	},
	"headers twice": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.headers(r.id, false, "x-more", "1")
	},
	"malformed grpc-status": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, false, grpcMessage(0, reply("x")))
		r.c.headers(r.id, true, "grpc-status", "zero")
	},
	"no grpc-status": func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.data(r.id, false, grpcMessage(0, reply("x")))
		r.c.headers(r.id, true, "x-trailer", "1")
	},
	"invalid field name": func(r *h2req) {
		r.c.headers(r.id, true, ":status", "200", "content-type", "application/grpc", "Grpc-Status", "0")
	},
}

func TestMalformedAnswersAreInternal(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) {
		if h := malformed[r.callID()]; h != nil {
			h(r)
			return
		}
		r.answer(reply("fine"))
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	for name := range malformed {
		_, err := do(context.Background(), m, name)
		if status.Code(err) != codes.Internal {
			t.Errorf("%s: got %v, want Internal", name, err)
		}
	}
	// None of them is the connection's fault: it still serves.
	if got, err := do(context.Background(), m, "ok"); err != nil || got != "fine" {
		t.Fatalf("after the malformed answers: %q, %v", got, err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

func TestAnswerOverMaxRecvSize(t *testing.T) {
	ids := make(chan uint32, 1)
	s := startH2(t, h2config{handle: func(r *h2req) {
		switch r.callID() {
		case "big":
			ids <- r.id
			r.answer(reply(strings.Repeat("b", 50_000)))
		case "declared big":
			msg := grpcMessage(0, reply("x"))
			msg[1], msg[2], msg[3], msg[4] = 0, 1, 0, 0 // 65,536 bytes announced
			r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
			r.c.data(r.id, false, msg)
			r.c.headers(r.id, true, "grpc-status", "0")
		default:
			r.answer(reply("small"))
		}
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second, MaxRecvSize: 1000})
	m := sendMessage(c)
	_, err := do(context.Background(), m, "big")
	wantCode(t, err, codes.ResourceExhausted)
	id := <-ids
	s.waitFor("the big answer's stream reset", func(log []h2frame) bool { return count(log, isRST(id, http2.ErrCodeCancel)) > 0 })
	_, err = do(context.Background(), m, "declared big")
	wantCode(t, err, codes.ResourceExhausted)
	if got, err := do(context.Background(), m, "next"); err != nil || got != "small" {
		t.Fatalf("the next call: %q, %v", got, err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: the connection serves on", n)
	}
}

func TestRefusedStreamIsSentAgainOnce(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	s := startH2(t, h2config{handle: func(r *h2req) {
		mu.Lock()
		tries[r.callID()]++
		n := tries[r.callID()]
		mu.Unlock()
		if n == 1 || r.callID() == "always refused" {
			r.c.rst(r.id, http2.ErrCodeRefusedStream)
			return
		}
		r.answer(reply(r.callID()))
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	if got, err := do(context.Background(), m, "refused once"); err != nil || got != "refused once" {
		t.Fatalf("got %q, %v; want the answer of the second attempt", got, err)
	}
	_, err := do(context.Background(), m, "always refused")
	wantCode(t, err, codes.Unavailable)
	mu.Lock()
	defer mu.Unlock()
	if tries["refused once"] != 2 || tries["always refused"] != 2 {
		t.Errorf("the server saw the calls %v times, want 2 each", tries)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

func TestPingIsAcked(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) { r.answer(reply("x")) }})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	if _, err := do(context.Background(), sendMessage(c), "x"); err != nil {
		t.Fatal(err)
	}
	data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	s.conn(0).write(func(fr *http2.Framer) error { return fr.WritePing(false, data) })
	s.waitFor("the PING's ack", func(log []h2frame) bool {
		return count(log, func(f h2frame) bool {
			return f.typ == http2.FramePing && f.flags.Has(http2.FlagPingAck) && f.ping == data
		}) == 1
	})
}

func TestServerThatNeverAnswers(t *testing.T) {
	ids := make(chan uint32, 1)
	s := startH2(t, h2config{handle: func(r *h2req) { ids <- r.id }})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 100 * time.Millisecond})
	_, err := do(context.Background(), sendMessage(c), "x")
	wantCode(t, err, codes.DeadlineExceeded)
	id := <-ids
	s.waitFor("RST_STREAM CANCEL", func(log []h2frame) bool { return count(log, isRST(id, http2.ErrCodeCancel)) == 1 })
}

func TestTimeoutWhileWaitingForTheWindow(t *testing.T) {
	// A window of 0: the request's message never leaves, the call still ends.
	s := startH2(t, h2config{settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}}})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 100 * time.Millisecond})
	_, err := do(context.Background(), sendMessage(c), "x")
	wantCode(t, err, codes.DeadlineExceeded)
	s.waitFor("RST_STREAM CANCEL", func(log []h2frame) bool { return count(log, isRST(1, http2.ErrCodeCancel)) == 1 })
	if n := s.seen(func(f h2frame) bool { return f.typ == http2.FrameData }); n != 0 {
		t.Errorf("%d DATA frames sent into a window of 0", n)
	}
}

func TestContextEndsTheCall(t *testing.T) {
	got := make(chan *h2req, 3)
	s := startH2(t, h2config{handle: func(r *h2req) { got <- r }})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { _, err := do(ctx, m, "x"); errs <- err }()
	r := <-got
	cancel()
	wantCode(t, <-errs, codes.Canceled)
	s.waitFor("RST_STREAM CANCEL", func(log []h2frame) bool { return count(log, isRST(r.id, http2.ErrCodeCancel)) == 1 })

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := do(ctx, m, "y")
	wantCode(t, err, codes.DeadlineExceeded)
	r = <-got
	s.waitFor("RST_STREAM CANCEL", func(log []h2frame) bool { return count(log, isRST(r.id, http2.ErrCodeCancel)) == 1 })
}

func TestContextEndsACallWaitingForAStream(t *testing.T) {
	got := make(chan *h2req, 1)
	s := startH2(t, h2config{
		settings: []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 1}},
		handle:   func(r *h2req) { got <- r },
	})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	first := make(chan error, 1)
	go func() { _, err := do(context.Background(), m, "first"); first <- err }()
	r := <-got
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { _, err := do(ctx, m, "second"); second <- err }()
	cancel()
	wantCode(t, <-second, codes.Canceled)
	r.answer(reply("first"))
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := s.seen(func(f h2frame) bool { return f.typ == http2.FrameHeaders }); n != 1 {
		t.Errorf("the server saw %d requests, want 1: the second call never had a stream", n)
	}
}
