package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/store/storetest"
)

func TestRegistersRefreshesWithSameIdentity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{
			mkTrunk("t1", "sip.one.net", "alice", "pw1"),
			mkTrunk("t2", "sip.two.net", "bob", ""),
		}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(2), nil // refresh at half of 2 s
		}}
		h := start(t, testSpec(), api, req, nil)
		for _, ref := range []string{"t1", "t2"} {
			first := h.waitFor(ref+" registered", stateIs(ref, registration.StateRegistered)).Record
			second := h.waitFor(ref+" refreshed", stateIs(ref, registration.StateRegistered)).Record
			if first.CallID != second.CallID || first.FromTag != second.FromTag {
				t.Errorf("%s: identity changed across a refresh: %s/%s -> %s/%s", ref, first.CallID, first.FromTag, second.CallID, second.FromTag)
			}
			if second.CSeq <= first.CSeq {
				t.Errorf("%s: CSeq did not increase: %d -> %d", ref, first.CSeq, second.CSeq)
			}
			if first.GrantedExpires != 2 {
				t.Errorf("%s: granted %d, want 2", ref, first.GrantedExpires)
			}
		}
		h.stop()
		byCall := map[string][]int{}
		for _, r := range req.requests() {
			id := r.GetMessage().GetCallId().GetCallId()
			byCall[id] = append(byCall[id], cseqOf(t, r))
			if r.GetMessage().GetRequestUri().GetUser() != "" {
				t.Errorf("Request-URI has a user part: %v", r.GetMessage().GetRequestUri())
			}
		}
		if len(byCall) != 2 {
			t.Fatalf("%d Call-IDs, want one per trunk", len(byCall))
		}
		for id, seqs := range byCall {
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 {
					t.Errorf("Call-ID %s: CSeqs %v do not go up by one", id, seqs)
				}
			}
		}
		if req.maxInflight != 1 {
			t.Errorf("a trunk had %d REGISTERs in flight at once", req.maxInflight)
		}
	})
}

func TestRestartContinuesBinding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := storetest.NewMemory()
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw")}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(3), nil
		}}
		h := start(t, testSpec(), api, req, st)
		before := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		h.stop()
		h2 := start(t, testSpec(), api, req, st)
		after := h2.waitFor("refreshed after restart", stateIs("t1", registration.StateRegistered)).Record
		if after.CallID != before.CallID || after.FromTag != before.FromTag {
			t.Errorf("identity changed across a restart")
		}
		if after.CSeq <= before.CSeq {
			t.Errorf("CSeq %d after restart, was %d", after.CSeq, before.CSeq)
		}
	})
}

func TestIntervalTooBriefUsesMinExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			if expiresOf(r) < 1200 {
				return response(sipmessagev2beta1.ResponseType_INTERVAL_TOO_BRIEF, "Interval Too Brief", "Min-Expires", "1200"), nil
			}
			return ok(int32(expiresOf(r))), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		if rec.MinExpires != 1200 || rec.GrantedExpires != 1200 {
			t.Errorf("min expires %d granted %d, want 1200/1200", rec.MinExpires, rec.GrantedExpires)
		}
		if _, err := h.r.Force(context.Background(), "t1"); err != nil {
			t.Fatal(err)
		}
		h.stop()
		sent := req.requests()
		if len(sent) != 3 || expiresOf(sent[0]) != 600 || expiresOf(sent[1]) != 1200 || expiresOf(sent[2]) != 1200 {
			var got []int
			for _, s := range sent {
				got = append(got, expiresOf(s))
			}
			t.Errorf("Expires sent %v, want [600 1200 1200] (Min-Expires kept)", got)
		}
	})
}

func TestBadExtensionDropsGin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			if v, ok := sipmsg.Header(r.GetMessage(), "Require"); ok && strings.Contains(v, "gin") {
				return response(sipmessagev2beta1.ResponseType_BAD_EXTENSION, "Bad Extension", "Unsupported", "gin"), nil
			}
			return ok(600), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		if !rec.NoGin {
			t.Error("NoGin not remembered")
		}
		if _, err := h.r.Force(context.Background(), "t1"); err != nil {
			t.Fatal(err)
		}
		h.stop()
		if sent := req.requests(); len(sent) != 3 {
			t.Errorf("%d REGISTERs, want 3 (gin, without gin, refresh without gin)", len(sent))
		}
	})
}

func TestTransientFailuresBackOffThenRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}}
		req := &fakeRequester{answer: func(_ *requesterv2beta1.SendMessageRequest, n int) (*sipmessagev2beta1.SIPMessage, error) {
			switch n {
			case 1:
				return nil, status.Error(codes.Unavailable, "requester down")
			case 2:
				return response(sipmessagev2beta1.ResponseType_SERVICE_UNAVAILABLE, "Service Unavailable", "Retry-After", "1"), nil
			}
			return ok(600), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		first := h.waitFor("retrying", stateIs("t1", registration.StateRetrying)).Record
		if first.Failures != 1 || !strings.Contains(first.LastError, "Unavailable") {
			t.Errorf("first failure: %+v", first)
		}
		if wait := first.NextActionAt.Sub(first.UpdatedAt); wait < time.Second || wait > 2*time.Second {
			t.Errorf("first backoff %s, want within [W/2, W] = [1s, 2s] (W = base * 2^1)", wait)
		}
		second := h.waitFor("retrying again", stateIs("t1", registration.StateRetrying)).Record
		if wait := second.NextActionAt.Sub(second.UpdatedAt); wait != time.Second {
			t.Errorf("Retry-After 1 gave a wait of %s", wait)
		}
		rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		if rec.Failures != 0 {
			t.Errorf("failures %d after success", rec.Failures)
		}
	})
}

func TestRejectedWaitsLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return response(sipmessagev2beta1.ResponseType_FORBIDDEN, "Forbidden"), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("rejected", stateIs("t1", registration.StateRejected)).Record
		if rec.LastResponseCode != 403 || time.Until(rec.NextActionAt) < 50*time.Minute {
			t.Errorf("rejected record %+v", rec)
		}
	})
}

func TestUnregisterOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", ""), mkTrunk("t2", "sip.two.net", "bob", "")}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(int32(expiresOf(r))), nil
		}}
		spec := testSpec()
		spec.UnregisterOnStop = true
		h := start(t, spec, api, req, nil)
		h.waitFor("t1", stateIs("t1", registration.StateRegistered))
		h.waitFor("t2", stateIs("t2", registration.StateRegistered))
		h.stop()
		zero := 0
		for _, r := range req.requests() {
			if expiresOf(r) == 0 {
				zero++
			}
		}
		if zero != 2 {
			t.Errorf("%d unregisters on shutdown, want 2", zero)
		}
	})
}

// TestSubscribeAfterStopEnds: the registry's stop ends open subscriptions and later
// ones with ErrStopping.
func TestSubscribeAfterStopEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, testSpec(), &fakeAPI{}, &fakeRequester{}, nil)
		live := h.r.Subscribe()
		defer live.Close()
		h.stop()
		if _, err := live.Next(context.Background()); !errors.Is(err, ErrStopping) {
			t.Fatalf("open subscription at stop: %v, want ErrStopping", err)
		}
		late := h.r.Subscribe()
		defer late.Close()
		if _, err := late.Next(context.Background()); !errors.Is(err, ErrStopping) {
			t.Fatalf("subscription after stop: %v, want ErrStopping", err)
		}
	})
}
