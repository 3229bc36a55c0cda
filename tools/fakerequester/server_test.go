package fakerequester_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/fakerequester"
)

type rt = sipmessagev2beta1.ResponseType

func TestBehaviours(t *testing.T) {
	gin := &sipmessagev2beta1.Extension{Name: "Require", Value: "gin"}
	ginInList := &sipmessagev2beta1.Extension{Name: "require", Value: "path, gin"}
	tests := []struct {
		name        string
		b           fakerequester.Behaviour
		req         reg
		want        rt
		wantReason  string
		wantExpires int32 // of Contact and Expires, for OK
		wantExts    map[string]string
		wantCode    codes.Code
	}{
		{name: "ok grants the max", req: reg{expires: 3600}, want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 600},
		{name: "ok grants less when asked", req: reg{expires: 300}, want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 300},
		{name: "ok unregister", req: reg{expires: 0}, want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 0},
		{name: "ok without Expires gets the max", req: reg{expires: -1}, want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 600},
		{name: "ok with its own max", b: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 120}, req: reg{expires: 3600},
			want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 120},
		{name: "forbidden", b: fakerequester.Behaviour{Kind: fakerequester.KindForbidden}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_FORBIDDEN, wantReason: "Forbidden"},
		{name: "not found", b: fakerequester.Behaviour{Kind: fakerequester.KindNotFound}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_NOT_FOUND, wantReason: "Not Found"},
		{name: "interval too brief", b: fakerequester.Behaviour{Kind: fakerequester.KindIntervalTooBrief, MinExpires: 3600}, req: reg{expires: 60},
			want: sipmessagev2beta1.ResponseType_INTERVAL_TOO_BRIEF, wantReason: "Interval Too Brief", wantExts: map[string]string{"Min-Expires": "3600"}},
		{name: "interval long enough", b: fakerequester.Behaviour{Kind: fakerequester.KindIntervalTooBrief, MinExpires: 3600, Expires: 7200}, req: reg{expires: 3600},
			want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 3600},
		{name: "interval unregister allowed", b: fakerequester.Behaviour{Kind: fakerequester.KindIntervalTooBrief, MinExpires: 3600}, req: reg{expires: 0},
			want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 0},
		{name: "bad extension gin", b: fakerequester.Behaviour{Kind: fakerequester.KindBadExtension}, req: reg{expires: 600, exts: []*sipmessagev2beta1.Extension{gin}},
			want: sipmessagev2beta1.ResponseType_BAD_EXTENSION, wantReason: "Bad Extension", wantExts: map[string]string{"Unsupported": "gin"}},
		{name: "bad extension gin in a list", b: fakerequester.Behaviour{Kind: fakerequester.KindBadExtension}, req: reg{expires: 600, exts: []*sipmessagev2beta1.Extension{ginInList}},
			want: sipmessagev2beta1.ResponseType_BAD_EXTENSION, wantReason: "Bad Extension", wantExts: map[string]string{"Unsupported": "gin"}},
		{name: "bad extension without gin", b: fakerequester.Behaviour{Kind: fakerequester.KindBadExtension}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 600},
		{name: "server error", b: fakerequester.Behaviour{Kind: fakerequester.KindServerError}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE, wantReason: "Service Unavailable", wantExts: map[string]string{"Retry-After": ""}},
		{name: "server error retry after", b: fakerequester.Behaviour{Kind: fakerequester.KindServerError, RetryAfter: 30}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE, wantReason: "Service Unavailable", wantExts: map[string]string{"Retry-After": "30"}},
		{name: "server internal error", b: fakerequester.Behaviour{Kind: fakerequester.KindServerError, Response: sipmessagev2beta1.ResponseType_SERVER_INTERNAL_ERROR}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_SERVER_INTERNAL_ERROR, wantReason: "Server Internal Error"},
		{name: "respond decline", b: fakerequester.Behaviour{Kind: fakerequester.KindRespond, Response: sipmessagev2beta1.ResponseType_DECLINE, RetryAfter: 5}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_DECLINE, wantReason: "Decline", wantExts: map[string]string{"Retry-After": "5"}},
		{name: "request timeout", b: fakerequester.Behaviour{Kind: fakerequester.KindRequestTimeout}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT, wantReason: "Request Timeout"},
		{name: "delayed ok", b: fakerequester.Behaviour{Kind: fakerequester.KindOK, Delay: 10 * time.Millisecond}, req: reg{expires: 600},
			want: sipmessagev2beta1.ResponseType_OK, wantReason: "OK", wantExpires: 600},
		{name: "unavailable", b: fakerequester.Behaviour{Kind: fakerequester.KindUnavailable}, req: reg{expires: 600}, wantCode: codes.Unavailable},
		{name: "invalid behaviour set at run time", b: fakerequester.Behaviour{Kind: "explode"}, req: reg{expires: 600}, wantCode: codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakerequester.New(fakerequester.Options{})
			s.SetDefault(tt.b)
			c := start(t, s)
			tt.req.user, tt.req.cseq = "alice", "7 REGISTER"
			req := tt.req.request()
			resp, err := c.SendMessage(t.Context(), req)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("SendMessage() error = %v, want code %v", err, tt.wantCode)
			}
			recs := s.Requests()
			if len(recs) != 1 || s.Count() != 1 {
				t.Fatalf("recorded %d calls, counted %d, want 1", len(recs), s.Count())
			}
			if tt.wantCode != codes.OK {
				if recs[0].Resp != nil || status.Code(recs[0].Err) != tt.wantCode {
					t.Errorf("recorded %v, %v", recs[0].Resp, recs[0].Err)
				}
				return
			}
			m := resp.GetMessage()
			if m.GetResponseType() != tt.want || m.GetReasonPhrase() != tt.wantReason {
				t.Errorf("answer %v %q, want %v %q", m.GetResponseType(), m.GetReasonPhrase(), tt.want, tt.wantReason)
			}
			if m.GetRequestUri() != nil {
				t.Errorf("answer has a request_uri")
			}
			msg := req.GetMessage()
			if !proto.Equal(m.GetCallId(), msg.GetCallId()) || !proto.Equal(m.GetFrom(), msg.GetFrom()) || !proto.Equal(m.GetTo(), msg.GetTo()) {
				t.Errorf("Call-ID/From/To not copied: %v", m)
			}
			if got := ext(m, "CSeq"); got != "7 REGISTER" {
				t.Errorf("CSeq = %q, want %q", got, "7 REGISTER")
			}
			for name, want := range tt.wantExts {
				if got := ext(m, name); got != want {
					t.Errorf("extension %s = %q, want %q", name, got, want)
				}
			}
			if tt.want == sipmessagev2beta1.ResponseType_OK {
				ct := m.GetContact()
				if ct.GetExpires() != tt.wantExpires || m.GetExpires().GetExpires() != tt.wantExpires || m.GetExpires() == nil {
					t.Errorf("granted Contact %d / Expires %v, want %d", ct.GetExpires(), m.GetExpires(), tt.wantExpires)
				}
				if u := ct.GetAddress().GetUri(); u.GetUser() != "alice" || u.GetHost() != "127.0.0.1" || u.GetPort() != 5060 {
					t.Errorf("Contact uri = %v", u)
				}
			} else if m.GetContact() != nil || m.GetExpires() != nil {
				t.Errorf("non-OK answer has Contact %v / Expires %v", m.GetContact(), m.GetExpires())
			}
			if !proto.Equal(recs[0].Req, req) || !proto.Equal(recs[0].Resp, m) || recs[0].Err != nil || recs[0].Key != "alice" {
				t.Errorf("recorded %+v", recs[0])
			}
		})
	}
}

func TestMatching(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
		DefaultExpires: 900,
		Default:        fakerequester.Behaviour{Kind: fakerequester.KindNotFound},
		Trunks: map[string]fakerequester.Behaviour{
			"alice":         {Kind: fakerequester.KindForbidden},
			"10.0.0.9:5080": {Kind: fakerequester.KindRequestTimeout},
			"10.0.0.9":      {Kind: fakerequester.KindServerError},
			"10.0.0.7":      {Kind: fakerequester.KindOK},
		},
	}})
	c := start(t, s)
	tests := []struct {
		name        string
		req         reg
		want        rt
		wantExpires int32
	}{
		{"AOR user first", reg{user: "alice", target: "10.0.0.9:5080"}, sipmessagev2beta1.ResponseType_FORBIDDEN, 0},
		{"whole target", reg{user: "bob", target: "10.0.0.9:5080"}, sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT, 0},
		{"target host", reg{user: "bob", target: "10.0.0.9:5060"}, sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE, 0},
		{"default", reg{user: "bob", target: "10.0.0.8:5060"}, sipmessagev2beta1.ResponseType_NOT_FOUND, 0},
		{"script default expires", reg{user: "bob", target: "10.0.0.7:5060", expires: -1}, sipmessagev2beta1.ResponseType_OK, 900},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.SendMessage(t.Context(), tt.req.request())
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetMessage().GetResponseType(); got != tt.want {
				t.Errorf("answer %v, want %v", got, tt.want)
			}
			if got := resp.GetMessage().GetExpires().GetExpires(); got != tt.wantExpires {
				t.Errorf("expires %d, want %d", got, tt.wantExpires)
			}
		})
	}

	s.SetBehaviour("alice", fakerequester.Behaviour{})
	resp, err := c.SendMessage(t.Context(), reg{user: "alice", expires: 60}.request())
	if err != nil || resp.GetMessage().GetResponseType() != sipmessagev2beta1.ResponseType_OK {
		t.Errorf("after SetBehaviour: %v, %v", resp, err)
	}
}

func TestFailN(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
		Default: fakerequester.Behaviour{Kind: fakerequester.KindRequestTimeout, FailN: 1},
		Trunks: map[string]fakerequester.Behaviour{
			"alice": {Kind: fakerequester.KindServerError, RetryAfter: 1, FailN: 2, Expires: 300},
		},
	}})
	c := start(t, s)
	send := func(user string) rt {
		t.Helper()
		resp, err := c.SendMessage(t.Context(), reg{user: user, expires: 600}.request())
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetMessage().GetResponseType()
	}
	steps := []struct {
		user string
		want rt
	}{
		{"alice", sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE},
		{"bob", sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT}, // the default counts per AOR user
		{"alice", sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE},
		{"alice", sipmessagev2beta1.ResponseType_OK},
		{"bob", sipmessagev2beta1.ResponseType_OK},
		{"carol", sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT},
		{"alice", sipmessagev2beta1.ResponseType_OK},
	}
	for i, st := range steps {
		if got := send(st.user); got != st.want {
			t.Errorf("step %d (%s): %v, want %v", i, st.user, got, st.want)
		}
	}
	recs := s.Requests()
	if got := recs[3].Resp.GetExpires().GetExpires(); got != 300 {
		t.Errorf("ok after fail_n granted %d, want the behaviour's 300", got)
	}

	s.SetBehaviour("alice", fakerequester.Behaviour{Kind: fakerequester.KindForbidden, FailN: 1})
	if got := send("alice"); got != sipmessagev2beta1.ResponseType_FORBIDDEN {
		t.Errorf("after SetBehaviour the count starts again: %v, want FORBIDDEN", got)
	}
	s.SetDefault(fakerequester.Behaviour{Kind: fakerequester.KindNotFound, FailN: 1})
	if got := send("bob"); got != sipmessagev2beta1.ResponseType_NOT_FOUND {
		t.Errorf("after SetDefault the count starts again: %v, want NOT_FOUND", got)
	}
}

func TestHangEndsWithTheClientDeadline(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
		Default: fakerequester.Behaviour{Kind: fakerequester.KindHang},
	}})
	c := start(t, s)
	tests := []struct {
		name string
		b    fakerequester.Behaviour
	}{
		{"hang", fakerequester.Behaviour{Kind: fakerequester.KindHang}},
		{"long delay", fakerequester.Behaviour{Kind: fakerequester.KindOK, Delay: time.Hour}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetDefault(tt.b)
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if _, err := c.SendMessage(ctx, reg{user: "alice", expires: 600}.request()); status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("SendMessage() error = %v, want DeadlineExceeded", err)
			}
			wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer wcancel()
			err := s.Wait(wctx, func(r []fakerequester.Recorded) bool { return len(r) == i+1 })
			if err != nil {
				t.Fatal(err)
			}
			rec := s.Requests()[i]
			if code := status.Code(rec.Err); rec.Resp != nil || (code != codes.DeadlineExceeded && code != codes.Canceled) {
				t.Errorf("recorded %v, %v; want no answer and the context's error", rec.Resp, rec.Err)
			}
		})
	}
}

func TestStopEndsHangingCalls(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
		Default: fakerequester.Behaviour{Kind: fakerequester.KindHang},
	}})
	c := start(t, s)
	errc := make(chan error, 1)
	go func() {
		_, err := c.SendMessage(t.Context(), reg{user: "alice", expires: 600}.request())
		errc <- err
	}()
	waitCount(t, s, 1)
	s.Stop()
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Errorf("SendMessage() after Stop error = %v, want Unavailable", err)
	}
}

// waitCount polls Count until n calls arrived, or fails at a deadline.
func waitCount(t *testing.T, s *fakerequester.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("Count() = %d, want %d before the deadline", s.Count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMaxInFlightPerKey(t *testing.T) {
	t.Run("one per key", func(t *testing.T) {
		s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
			Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Delay: 5 * time.Millisecond},
		}})
		c := start(t, s)
		var wg sync.WaitGroup
		for _, user := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			wg.Go(func() {
				for range 3 { // sequential per key, concurrent across keys
					if _, err := c.SendMessage(t.Context(), reg{user: user, expires: 600}.request()); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if got := s.MaxInFlightPerKey(); got != 1 {
			t.Errorf("MaxInFlightPerKey() = %d, want 1", got)
		}
		if got := s.Count(); got != 24 {
			t.Errorf("Count() = %d, want 24", got)
		}
	})
	t.Run("two at once on one key", func(t *testing.T) {
		s := fakerequester.New(fakerequester.Options{NoRecord: true, Script: fakerequester.Script{
			Default: fakerequester.Behaviour{Kind: fakerequester.KindHang},
		}})
		c := start(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { _, _ = c.SendMessage(ctx, reg{user: "same", expires: 600}.request()) })
		}
		waitCount(t, s, 2)
		cancel()
		wg.Wait()
		if got := s.MaxInFlightPerKey(); got != 2 {
			t.Errorf("MaxInFlightPerKey() = %d, want 2", got)
		}
		if n := len(s.Requests()); n != 0 {
			t.Errorf("NoRecord kept %d requests", n)
		}
	})
}

func TestWait(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{})
	c := start(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- s.Wait(ctx, func(r []fakerequester.Recorded) bool {
			return len(r) == 3 && r[2].Key == "carol"
		})
	}()
	for _, user := range []string{"alice", "bob", "carol"} {
		if _, err := c.SendMessage(t.Context(), reg{user: user, expires: 600}.request()); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait() = %v", err)
	}

	short, cancelShort := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancelShort()
	if err := s.Wait(short, func(r []fakerequester.Recorded) bool { return len(r) > 3 }); err == nil {
		t.Error("Wait() for a predicate that never holds returned nil")
	}
}

func TestRecordFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	s := fakerequester.New(fakerequester.Options{RecordFile: path, Script: fakerequester.Script{
		Trunks: map[string]fakerequester.Behaviour{"bob": {Kind: fakerequester.KindUnavailable}},
	}})
	c := start(t, s)
	if _, err := c.SendMessage(t.Context(), reg{user: "alice", expires: 60}.request()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendMessage(t.Context(), reg{user: "bob", expires: 60}.request()); status.Code(err) != codes.Unavailable {
		t.Fatalf("bob: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := fakerequester.ReadRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Requests()
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("record file has %d calls, memory %d, want 2", len(got), len(want))
	}
	for i := range got {
		if !got[i].At.Equal(want[i].At) || got[i].Key != want[i].Key || !proto.Equal(got[i].Req, want[i].Req) ||
			!proto.Equal(got[i].Resp, want[i].Resp) || status.Code(got[i].Err) != status.Code(want[i].Err) {
			t.Errorf("record %d: file %+v, memory %+v", i, got[i], want[i])
		}
	}
}

func TestServeReportsRecordFileError(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{RecordFile: filepath.Join(t.TempDir(), "no", "such", "dir.jsonl")})
	if err := s.Serve(nil); err == nil {
		t.Error("Serve() with an unwritable record file returned nil")
	}
}
