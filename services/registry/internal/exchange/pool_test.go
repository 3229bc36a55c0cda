package exchange

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

// wireOf is req's deterministic wire bytes.
func wireOf(t *testing.T, req *requesterv2beta1.SendMessageRequest) string {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

// withoutAuth is a clone of req without its digest answer (Authorization), as it was
// built before the answer was applied.
func withoutAuth(req *requesterv2beta1.SendMessageRequest) *requesterv2beta1.SendMessageRequest {
	c := proto.Clone(req).(*requesterv2beta1.SendMessageRequest)
	c.Message.Authorization = nil
	return c
}

// TestSendContract runs exchanges one after another through one Runner, as a worker
// does: a challenged one (its second REGISTER carries a digest answer), then one whose
// registrar refuses gin, then a plain one. Each REGISTER is, at its send, exactly the
// request built for it (CSeq, gin, answer: nothing left over from the one before, whose
// block it may reuse); a clone taken at the send keeps those bytes after the later
// exchanges; the request itself is given back once the answer is read, so a send that
// kept it without cloning finds it empty (the contract on Send).
func TestSendContract(t *testing.T) {
	rn := &Runner{Settings: Settings{Gin: true, UserAgent: "test", Methods: []string{"INVITE", "MESSAGE"}},
		Observe: func(string, time.Duration) {}, Log: slog.New(slog.DiscardHandler)}
	cred := trunk.Trunk{Username: "alice", Password: "pw"}
	type attempt struct {
		cseq uint32
		gin  bool
		auth bool
	}
	type kept struct {
		raw, clone *requesterv2beta1.SendMessageRequest
		bytes      string
	}
	var all []kept
	for i, tc := range []struct {
		answers []*sipmessagev2beta1.SIPMessage
		want    []attempt
	}{
		{[]*sipmessagev2beta1.SIPMessage{unauthorized(false), ok()}, []attempt{{11, true, false}, {12, true, true}}},
		{[]*sipmessagev2beta1.SIPMessage{badGin, ok()}, []attempt{{11, true, false}, {12, false, false}}},
		{[]*sipmessagev2beta1.SIPMessage{ok()}, []attempt{{11, true, false}}},
	} {
		rec := registration.Record{TrunkRef: fmt.Sprint("t", i), CallID: fmt.Sprint("c", i, "@test"), FromTag: "f", CSeq: 10}
		x, err := New(rn.Settings, cred, rec, fmt.Sprint("sip", i, ".net"), 5060, "udp", "alice", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		x.Reg.Expires = 600
		n := 0
		send := func(_ context.Context, req *requesterv2beta1.SendMessageRequest, _ bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
			w := tc.want[n]
			reg := x.Reg
			reg.CSeq, reg.Gin = w.cseq, w.gin
			built, err := sipmsg.BuildChecked(reg)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.GetMessage().GetAuthorization() != nil; got != w.auth {
				t.Errorf("exchange %d, REGISTER %d: authorization %v, want %v", i, n+1, got, w.auth)
			}
			if wireOf(t, withoutAuth(req)) != wireOf(t, built) {
				t.Errorf("exchange %d, REGISTER %d: not the request built for it:\n got %v\nwant %v", i, n+1, req, built)
			}
			all = append(all, kept{req, proto.Clone(req).(*requesterv2beta1.SendMessageRequest), wireOf(t, req)})
			n++
			return &requesterv2beta1.SendMessageResponse{Message: tc.answers[n-1]}, time.Millisecond, nil
		}
		if res := rn.Run(context.Background(), x, &rec, send); res.State != registration.StateRegistered {
			t.Fatalf("exchange %d: %s %s", i, res.State, res.Reason)
		}
		if n != len(tc.want) {
			t.Fatalf("exchange %d: %d REGISTERs, want %d", i, n, len(tc.want))
		}
	}
	for i, k := range all {
		if wireOf(t, k.clone) != k.bytes {
			t.Errorf("REGISTER %d: its clone changed after the later exchanges", i+1)
		}
		if k.raw.GetMessage() != nil || k.raw.GetTarget() != "" {
			t.Errorf("REGISTER %d: still readable after its exchange: %v", i+1, k.raw)
		}
	}
}

// TestSendConcurrent runs exchanges on many goroutines through one Runner, as the
// workers do. Each send reads its request, yields (other exchanges build and give back
// requests meanwhile), and reads it again: the bytes must not change and must be its
// own binding's (its Call-ID, its CSeq). A block handed to two exchanges at once, or
// given back while a send still runs, fails here, and the race detector reports it.
func TestSendConcurrent(t *testing.T) {
	rn := &Runner{Settings: Settings{Gin: true, UserAgent: "test"},
		Observe: func(string, time.Duration) {}, Log: slog.New(slog.DiscardHandler)}
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rec := registration.Record{TrunkRef: fmt.Sprint("t", w), CallID: fmt.Sprint("call-", w, "@test"), FromTag: "f", CSeq: 1}
			x, err := New(rn.Settings, trunk.Trunk{Username: "u", Password: "p"}, rec, fmt.Sprint("sip", w, ".net"), 5060, "udp", "alice", "edge.local", 5060)
			if err != nil {
				t.Error(err)
				return
			}
			x.Reg.Expires = 600
			for range each {
				want := fmt.Sprint(rec.CSeq+1, " REGISTER")
				send := func(_ context.Context, req *requesterv2beta1.SendMessageRequest, _ bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
					before := wireOf(t, req)
					runtime.Gosched()
					cseq, _ := sipmsg.Header(req.GetMessage(), "CSeq")
					if req.GetMessage().GetCallId().GetCallId() != rec.CallID || cseq != want {
						t.Errorf("worker %d: sent Call-ID %q CSeq %q, want %q %q", w, req.GetMessage().GetCallId().GetCallId(), cseq, rec.CallID, want)
					}
					if wireOf(t, req) != before {
						t.Errorf("worker %d: the request changed during its send", w)
					}
					return &requesterv2beta1.SendMessageResponse{Message: ok()}, time.Millisecond, nil
				}
				if res := rn.Run(context.Background(), x, &rec, send); res.State != registration.StateRegistered {
					t.Errorf("worker %d: %s %s", w, res.State, res.Reason)
					return
				}
			}
		})
	}
	wg.Wait()
}
