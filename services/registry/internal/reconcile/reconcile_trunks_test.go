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
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/watch"
)

func TestRemovedTrunkIsUnregisteredAndForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := storetest.NewMemory()
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", ""), mkTrunk("t2", "sip.two.net", "bob", "")}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(int32(expiresOf(r))), nil
		}}
		spec := testSpec()
		spec.RegisterInterval = 200 * time.Millisecond
		h := start(t, spec, api, req, st)
		reg := h.waitFor("t1 registered", stateIs("t1", registration.StateRegistered)).Record
		h.waitFor("t2 registered", stateIs("t2", registration.StateRegistered))
		api.set([]*trunksv2beta1.Trunk{mkTrunk("t2", "sip.two.net", "bob", "")}, nil)
		h.waitFor("t1 removed", func(ev watch.Event) bool { return ev.Removed && ev.Record.TrunkRef == "t1" })
		if _, err := st.Get(context.Background(), "t1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("t1 still in the store: %v", err)
		}
		var unreg *requesterv2beta1.SendMessageRequest
		for _, r := range req.requests() {
			if r.GetMessage().GetCallId().GetCallId() == reg.CallID && expiresOf(r) == 0 {
				unreg = r
			}
		}
		if unreg == nil {
			t.Fatal("no REGISTER with Expires 0 for the removed trunk")
		}
		if got := cseqOf(t, unreg); got != int(reg.CSeq)+1 {
			t.Errorf("unregister CSeq %d, want %d", got, reg.CSeq+1)
		}
	})
}

func TestAPIOutageKeepsRegistrations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(2), nil
		}}
		spec := testSpec()
		spec.RegisterInterval = 100 * time.Millisecond
		h := start(t, spec, api, req, nil)
		h.waitFor("registered", stateIs("t1", registration.StateRegistered))
		api.set(nil, status.Error(codes.Unavailable, "api down"))
		calls := func() int { api.mu.Lock(); defer api.mu.Unlock(); return api.calls }
		c0 := calls()
		// Two refreshes while the API is down: the trunk stays registered.
		h.waitFor("refresh during outage", stateIs("t1", registration.StateRegistered))
		h.waitFor("second refresh during outage", stateIs("t1", registration.StateRegistered))
		if calls() <= c0 {
			t.Error("no discovery happened during the outage")
		}
		if !h.r.APIDown() {
			t.Error("APIDown false during the outage")
		}
		if _, ok := h.r.Record("t1"); !ok {
			t.Error("trunk forgotten during an API outage")
		}
	})
}

func TestChangedTrunkReplacesBinding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw")}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(int32(expiresOf(r))), nil
		}}
		spec := testSpec()
		spec.RegisterInterval = 100 * time.Millisecond
		h := start(t, spec, api, req, nil)
		old := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		api.set([]*trunksv2beta1.Trunk{mkTrunk("t1", "sip.new.net", "alice", "pw")}, nil)
		nw := h.waitFor("registered at the new URI", func(ev watch.Event) bool {
			return ev.Record.TrunkRef == "t1" && ev.Record.State == registration.StateRegistered && ev.Record.Target == "sip.new.net:5060"
		}).Record
		if nw.CallID == old.CallID {
			t.Error("new binding kept the old Call-ID")
		}
		found := false
		for _, r := range req.requests() {
			if r.GetMessage().GetCallId().GetCallId() == old.CallID && expiresOf(r) == 0 && r.GetTarget() == "sip.one.net:5060" {
				found = true
			}
		}
		if !found {
			t.Error("old binding not removed with Expires 0 at the old target")
		}
	})
}

func TestInvalidTrunkIsReportedNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := mkTrunk("t1", "sip.one.net", "alice", "")
		bad.Uris[0].Transport = "TLS"
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{bad, nil}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(600), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("rejected", stateIs("t1", registration.StateRejected)).Record
		if !strings.Contains(rec.LastError, "TLS") {
			t.Errorf("reason %q does not name the transport", rec.LastError)
		}
		h.stop()
		if n := len(req.requests()); n != 0 {
			t.Errorf("%d REGISTERs sent for an invalid trunk", n)
		}
	})
}

// TestRepairedTrunkIsRegistered: a trunk whose API data was unusable is registered as
// soon as the data is fixed, whether or not it was registered before.
func TestRepairedTrunkIsRegistered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := mkTrunk("t1", "sip.one.net", "alice", "")
		bad.Uris[0].Transport = "TLS"
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{bad}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(600), nil
		}}
		spec := testSpec()
		spec.RegisterInterval = 100 * time.Millisecond
		h := start(t, spec, api, req, nil)
		h.waitFor("rejected", stateIs("t1", registration.StateRejected))
		api.set([]*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}, nil)
		h.waitFor("registered once fixed", stateIs("t1", registration.StateRegistered))
		api.set([]*trunksv2beta1.Trunk{bad}, nil)
		h.waitFor("rejected again", func(ev watch.Event) bool {
			return ev.Record.TrunkRef == "t1" && ev.Record.State == registration.StateRejected && strings.Contains(ev.Record.LastError, "TLS")
		})
		api.set([]*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "")}, nil)
		h.waitFor("registered once fixed again", stateIs("t1", registration.StateRegistered))
	})
}
