package grpclite

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

func TestResetCodesAsGRPCGo(t *testing.T) {
	// grpc-go's http2ErrConvTab, and Unknown for a code it does not know.
	want := map[http2.ErrCode]codes.Code{
		http2.ErrCodeNo: codes.Internal, http2.ErrCodeProtocol: codes.Internal, http2.ErrCodeInternal: codes.Internal,
		http2.ErrCodeFlowControl: codes.ResourceExhausted, http2.ErrCodeSettingsTimeout: codes.Internal,
		http2.ErrCodeStreamClosed: codes.Internal, http2.ErrCodeFrameSize: codes.Internal,
		http2.ErrCodeCancel: codes.Canceled, http2.ErrCodeCompression: codes.Internal, http2.ErrCodeConnect: codes.Internal,
		http2.ErrCodeEnhanceYourCalm: codes.ResourceExhausted, http2.ErrCodeInadequateSecurity: codes.PermissionDenied,
		http2.ErrCodeHTTP11Required: codes.Internal, 0x42: codes.Unknown,
	}
	var code atomic.Uint32
	s := startH2(t, h2config{handle: func(r *h2req) {
		r.c.headers(r.id, false, ":status", "200", "content-type", "application/grpc")
		r.c.rst(r.id, http2.ErrCode(code.Load()))
	}})
	c, dials := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	m := sendMessage(c)
	for rst, want := range want {
		code.Store(uint32(rst))
		if _, err := do(context.Background(), m, "x"); errorCode(err) != want {
			t.Errorf("RST_STREAM %v: got %v, want %v", rst, err, want)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: a reset ends the stream, not the connection", n)
	}
}

func errorCode(err error) codes.Code {
	var ce *callError
	if !errors.As(err, &ce) {
		return codes.OK
	}
	return ce.st.Code()
}

func TestRequestHeaders(t *testing.T) {
	var mu sync.Mutex
	var seen [][]hpack.HeaderField
	s := startH2(t, h2config{handle: func(r *h2req) {
		mu.Lock()
		seen = append(seen, r.fields)
		mu.Unlock()
		r.answer(reply("x"))
	}})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second, UserAgent: "tester/1"})
	for range 3 {
		if _, err := do(context.Background(), sendMessage(c), "x"); err != nil {
			t.Fatal(err)
		}
	}
	want := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: requesterv2beta1.Requester_SendMessage_FullMethodName},
		{Name: ":authority", Value: s.addr()}, {Name: "content-type", Value: "application/grpc"},
		{Name: "user-agent", Value: "tester/1"}, {Name: "te", Value: "trailers"},
		{Name: "grpc-timeout", Value: "10000000u"},
	}
	mu.Lock()
	defer mu.Unlock()
	for i, fields := range seen { // one decoder for the connection: the block leaves its table alone
		if !slices.Equal(fields, want) {
			t.Errorf("request %d: headers %v, want %v", i, fields, want)
		}
	}
}

func TestMaxFrameSize(t *testing.T) {
	big := strings.Repeat("m", 100<<10)
	for _, tc := range []struct {
		settings []http2.Setting
		max      func(n int) bool
	}{
		{nil, func(n int) bool { return n == defaultFrame }},
		{[]http2.Setting{{ID: http2.SettingMaxFrameSize, Val: 1 << 20}, {ID: http2.SettingInitialWindowSize, Val: 1 << 20}},
			func(n int) bool { return n > defaultFrame }},
	} {
		s := startH2(t, h2config{settings: tc.settings, handle: func(r *h2req) { r.answer(reply(r.callID())) }})
		c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
		if got, err := do(context.Background(), sendMessage(c), big); err != nil || got != big {
			t.Fatalf("%v: %d bytes, %v", tc.settings, len(got), err)
		}
		largest := 0
		s.seen(func(f h2frame) bool {
			if f.typ == http2.FrameData {
				largest = max(largest, f.length)
			}
			return false
		})
		if !tc.max(largest) {
			t.Errorf("%v: the largest DATA frame is %d bytes", tc.settings, largest)
		}
	}
}

func TestWindowRaisedMidCall(t *testing.T) {
	s := startH2(t, h2config{
		settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}},
		handle:   func(r *h2req) { r.answer(reply(r.callID())) },
	})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second})
	errs := make(chan error, 1)
	go func() {
		got, err := do(context.Background(), sendMessage(c), "waiting for a window")
		if err == nil && got != "waiting for a window" {
			err = errors.New("answer " + got)
		}
		errs <- err
	}()
	s.waitFor("the request's HEADERS", func(log []h2frame) bool {
		return count(log, func(f h2frame) bool { return f.typ == http2.FrameHeaders }) == 1
	})
	// The new initial window applies to the stream already open (RFC 9113, 6.9.2).
	s.conn(0).setInitialWindow(100)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if sc := s.conn(0); sc.violationCount() != 0 {
		t.Errorf("%d DATA frames beyond the server's windows", sc.violationCount())
	}
}

func TestMaxRecvSizeBoundary(t *testing.T) {
	s := startH2(t, h2config{handle: func(r *h2req) {
		n := 1000
		if r.callID() == "over" {
			n++
		}
		r.answer(make([]byte, n))
	}})
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second, MaxRecvSize: 1000})
	m := sendMessage(c)
	var got rawAnswer
	if err := m.Call(context.Background(), request("at"), &got); err != nil || len(got.b) != 1000 {
		t.Fatalf("a message of MaxRecvSize: %d bytes, %v", len(got.b), err)
	}
	err := m.Call(context.Background(), request("over"), &got)
	wantCode(t, err, codes.ResourceExhausted)
}

func TestCustomMarshal(t *testing.T) {
	got := make(chan string, 1)
	s := startH2(t, h2config{handle: func(r *h2req) {
		got <- r.callID()
		r.answer(reply("x"))
	}})
	marshalErr := errors.New("marshal refused")
	c, _ := liteClient(t, s.addr(), Options{Timeout: 10 * time.Second,
		Marshal: func(b []byte, req proto.Message) ([]byte, error) {
			if req.(*requesterv2beta1.SendMessageRequest).GetTarget() == "refuse" {
				return b, marshalErr
			}
			other, err := proto.Marshal(request("made by Marshal"))
			return append(b, other...), err
		}})
	m := sendMessage(c)
	if _, err := do(context.Background(), m, "x"); err != nil {
		t.Fatal(err)
	}
	if id := <-got; id != "made by Marshal" {
		t.Fatalf("the server got %q, want what Marshal made", id)
	}
	req := request("x")
	req.Target = "refuse"
	err := m.Call(context.Background(), req, &answer{})
	wantCode(t, err, codes.Internal)
	if !strings.Contains(err.Error(), marshalErr.Error()) {
		t.Errorf("error %v does not tell Marshal's", err)
	}
	if n := s.seen(func(f h2frame) bool { return f.typ == http2.FrameHeaders }); n != 1 {
		t.Errorf("the server saw %d requests, want 1", n)
	}
}
