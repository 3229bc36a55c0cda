package exchange

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

func answer(t sipmessagev2beta1.ResponseType, ext ...string) *sipmessagev2beta1.SIPMessage {
	m := &sipmessagev2beta1.SIPMessage{MessageType: &sipmessagev2beta1.SIPMessage_ResponseType{ResponseType: t}}
	for i := 0; i+1 < len(ext); i += 2 {
		m.Extensions = append(m.Extensions, &sipmessagev2beta1.Extension{Name: ext[i], Value: ext[i+1]})
	}
	return m
}

func ok() *sipmessagev2beta1.SIPMessage {
	m := answer(sipmessagev2beta1.ResponseType_OK)
	m.Contact = &sipmessagev2beta1.Contact{Expires: 600}
	return m
}

func unauthorized(stale bool) *sipmessagev2beta1.SIPMessage {
	m := answer(sipmessagev2beta1.ResponseType_UNAUTHORIZED)
	m.WwwAuthenticate = &sipmessagev2beta1.WWWAuthenticate{Scheme: "Digest", Realm: "test", Nonce: "n", Qop: "auth"}
	if stale {
		m.WwwAuthenticate.Stale = true
	}
	return m
}

var (
	tooBrief    = answer(sipmessagev2beta1.ResponseType_INTERVAL_TOO_BRIEF, "Min-Expires", "1200")
	badGin      = answer(sipmessagev2beta1.ResponseType_BAD_EXTENSION, "Unsupported", "gin")
	forbidden   = answer(sipmessagev2beta1.ResponseType_FORBIDDEN)
	unavailable = answer(sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE)
)

// sent is what one REGISTER of a run carried.
type sent struct {
	cseq    uint32
	expires int
	gin     bool
	auth    bool
}

// TestRun: each answer leads to the resend or the result RFC 3261 asks for, each
// resend with the next CSeq, and the binding's record learns Min-Expires and no-gin.
func TestRun(t *testing.T) {
	cred := trunk.Trunk{Username: "alice", Password: "pw"}
	cases := []struct {
		name     string
		edgePort bool
		cred     trunk.Trunk
		answers  []*sipmessagev2beta1.SIPMessage
		want     registration.State
		reason   string // a part of the result's reason
		sent     []sent
		check    func(t *testing.T, rec registration.Record)
	}{
		{name: "200", answers: []*sipmessagev2beta1.SIPMessage{ok()}, cred: cred,
			want: registration.StateRegistered, sent: []sent{{11, 600, true, false}}},
		{name: "challenge answered", answers: []*sipmessagev2beta1.SIPMessage{unauthorized(false), ok()}, cred: cred,
			want: registration.StateRegistered, sent: []sent{{11, 600, true, false}, {12, 600, true, true}}},
		{name: "stale nonce answered once", answers: []*sipmessagev2beta1.SIPMessage{unauthorized(false), unauthorized(true), ok()}, cred: cred,
			want: registration.StateRegistered, sent: []sent{{11, 600, true, false}, {12, 600, true, true}, {13, 600, true, true}}},
		{name: "challenged again", answers: []*sipmessagev2beta1.SIPMessage{unauthorized(false), unauthorized(false)}, cred: cred,
			want: registration.StateAuthFailed, reason: "challenged again", sent: []sent{{11, 600, true, false}, {12, 600, true, true}}},
		{name: "challenge without credentials", answers: []*sipmessagev2beta1.SIPMessage{unauthorized(false)},
			want: registration.StateAuthFailed, reason: "no outbound credentials", sent: []sent{{11, 600, true, false}}},
		{name: "challenge through the EdgePort", edgePort: true, answers: []*sipmessagev2beta1.SIPMessage{unauthorized(false)}, cred: cred,
			want: registration.StateAuthFailed, reason: "X-Gateway-Auth", sent: []sent{{11, 600, true, false}}},
		{name: "423 raises expires", answers: []*sipmessagev2beta1.SIPMessage{tooBrief, ok()}, cred: cred,
			want: registration.StateRegistered, sent: []sent{{11, 600, true, false}, {12, 1200, true, false}},
			check: func(t *testing.T, rec registration.Record) {
				if rec.MinExpires != 1200 || rec.RequestedExpires != 1200 {
					t.Errorf("Min-Expires not learnt: %d/%d", rec.MinExpires, rec.RequestedExpires)
				}
			}},
		{name: "second 423", answers: []*sipmessagev2beta1.SIPMessage{tooBrief, tooBrief}, cred: cred,
			want: registration.StateRejected, reason: "423", sent: []sent{{11, 600, true, false}, {12, 1200, true, false}}},
		{name: "420 drops gin", answers: []*sipmessagev2beta1.SIPMessage{badGin, ok()}, cred: cred,
			want: registration.StateRegistered, sent: []sent{{11, 600, true, false}, {12, 600, false, false}},
			check: func(t *testing.T, rec registration.Record) {
				if !rec.NoGin {
					t.Error("NoGin not learnt")
				}
			}},
		{name: "403", answers: []*sipmessagev2beta1.SIPMessage{forbidden}, cred: cred,
			want: registration.StateRejected, reason: "403", sent: []sent{{11, 600, true, false}}},
		{name: "503", answers: []*sipmessagev2beta1.SIPMessage{unavailable}, cred: cred,
			want: registration.StateRetrying, reason: "503", sent: []sent{{11, 600, true, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rn := &Runner{Settings: Settings{Gin: true, EdgePortAuth: tc.edgePort, UserAgent: "test"},
				Observe: func(string, time.Duration) {}, Log: slog.New(slog.DiscardHandler)}
			rec := registration.Record{TrunkRef: "t1", CallID: "c1@test", FromTag: "f1", CSeq: 10}
			x, err := New(rn.Settings, tc.cred, rec, "sip.one.net", 5060, "udp", "alice", "edge.local", 5060)
			if err != nil {
				t.Fatal(err)
			}
			x.Reg.Expires = 600
			var got []sent
			send := func(_ context.Context, req *requesterv2beta1.SendMessageRequest, first bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
				m := req.GetMessage()
				if first != (len(got) == 0) {
					t.Errorf("REGISTER %d: first = %v", len(got)+1, first)
				}
				_, gin := sipmsg.Header(m, "Require")
				_, proxyAuth := sipmsg.Header(m, "Proxy-Authorization")
				cseq, _ := sipmsg.Header(m, "CSeq")
				var n uint32
				for _, c := range cseq {
					if c < '0' || c > '9' {
						break
					}
					n = n*10 + uint32(c-'0')
				}
				got = append(got, sent{n, int(m.GetExpires().GetExpires()), gin, m.GetAuthorization() != nil || proxyAuth})
				if len(got) > len(tc.answers) {
					t.Fatalf("REGISTER %d: no answer left", len(got))
				}
				return &requesterv2beta1.SendMessageResponse{Message: tc.answers[len(got)-1]}, time.Millisecond, nil
			}
			res := rn.Run(context.Background(), x, &rec, send)
			if res.State != tc.want || !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("result %s %q, want %s with %q", res.State, res.Reason, tc.want, tc.reason)
			}
			if len(got) != len(tc.sent) {
				t.Fatalf("sent %+v, want %+v", got, tc.sent)
			}
			for i := range got {
				if got[i] != tc.sent[i] {
					t.Errorf("REGISTER %d: %+v, want %+v", i+1, got[i], tc.sent[i])
				}
			}
			if rec.CSeq != tc.sent[len(tc.sent)-1].cseq {
				t.Errorf("record CSeq %d, last sent %d", rec.CSeq, tc.sent[len(tc.sent)-1].cseq)
			}
			if tc.check != nil {
				tc.check(t, rec)
			}
		})
	}
}

// TestNotSentIsNotAnAnswer: a REGISTER the caller's Send stopped (lease lost, CSeq not
// durable) ends the exchange without being observed as an answer or an error.
func TestNotSentIsNotAnAnswer(t *testing.T) {
	var observed []string
	rn := &Runner{Settings: Settings{Gin: true, UserAgent: "test"},
		Observe: func(class string, _ time.Duration) { observed = append(observed, class) }, Log: slog.New(slog.DiscardHandler)}
	rec := registration.Record{TrunkRef: "t1", CallID: "c1@test", FromTag: "f1", CSeq: 10}
	x, err := New(rn.Settings, trunk.Trunk{}, rec, "sip.one.net", 5060, "udp", "alice", "edge.local", 5060)
	if err != nil {
		t.Fatal(err)
	}
	x.Reg.Expires = 600
	lost := NotSent("lease on the trunk not held")
	res := rn.Run(context.Background(), x, &rec, func(context.Context, *requesterv2beta1.SendMessageRequest, bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
		return nil, 0, lost
	})
	if !errors.Is(res.Err, ErrNotSent) || !errors.Is(res.Err, lost) || res.State != registration.StateRetrying {
		t.Errorf("result %+v", res)
	}
	if len(observed) != 0 {
		t.Errorf("observed %v for a REGISTER that never went out", observed)
	}
	other := errors.New("requester: Unavailable")
	res = rn.Run(context.Background(), x, &rec, func(context.Context, *requesterv2beta1.SendMessageRequest, bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
		return nil, time.Millisecond, other
	})
	if errors.Is(res.Err, ErrNotSent) || len(observed) != 1 || observed[0] != "error" {
		t.Errorf("a Requester error: result %+v, observed %v", res, observed)
	}
}

// TestTracingOffAllocatesNothing: without a tracer the span helpers cost nothing.
func TestTracingOffAllocatesNothing(t *testing.T) {
	rec := &registration.Record{TrunkRef: "t1", AOR: "sip:alice@sip.one.net", CSeq: 1}
	res := Result{State: registration.StateRegistered}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		_, span := startExchange(ctx, nil, rec, 600)
		traceAnswer(span, 1, 2, true, sipmsg.Outcome{Code: 200, Class: sipmsg.ClassOK})
		endExchange(span, &res, rec, 0)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per exchange with tracing off, want 0", allocs)
	}
}
