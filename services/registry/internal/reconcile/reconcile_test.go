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

	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/watch"
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

// digestFake answers the first REGISTER of a Call-ID with a challenge and the next
// with OK when it carries credentials from the right user; wrong users are challenged again.
func digestFake(proxy bool, goodUser string) func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
	return func(req *requesterv2beta1.SendMessageRequest, n int) (*sipmessagev2beta1.SIPMessage, error) {
		m := req.GetMessage()
		user := ""
		if a := m.GetAuthorization(); a != nil {
			user = a.GetUsername()
		}
		if v, ok := sipmsg.Header(m, "Proxy-Authorization"); ok {
			if i := strings.Index(v, `username="`); i >= 0 {
				user = strings.SplitN(v[i+10:], `"`, 2)[0]
			}
		}
		if user == goodUser {
			return ok(600), nil
		}
		if proxy {
			return response(sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED, "Proxy Authentication Required",
				"Proxy-Authenticate", `Digest realm="test", nonce="n`+string(rune('a'+n))+`", qop="auth", algorithm=SHA-256`), nil
		}
		r := response(sipmessagev2beta1.ResponseType_UNAUTHORIZED, "Unauthorized")
		r.WwwAuthenticate = &sipmessagev2beta1.WWWAuthenticate{Scheme: "Digest", Realm: "test", Nonce: "nonce", Qop: "auth"}
		return r, nil
	}
}

func TestChallengeAnsweredInRegistryMode(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(map[bool]string{false: "401", true: "407"}[proxy], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw")}}
				req := &fakeRequester{answer: digestFake(proxy, "alice")}
				h := start(t, testSpec(), api, req, nil)
				rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
				h.stop()
				sent := req.requests()
				if len(sent) != 2 {
					t.Fatalf("%d REGISTERs, want 2 (challenge, answer)", len(sent))
				}
				if c0, c1 := cseqOf(t, sent[0]), cseqOf(t, sent[1]); c1 != c0+1 {
					t.Errorf("CSeq %d then %d: the resend must be +1", c0, c1)
				}
				if rec.CSeq != uint32(cseqOf(t, sent[1])) {
					t.Errorf("record CSeq %d, last sent %d", rec.CSeq, cseqOf(t, sent[1]))
				}
				if _, gw := sipmsg.Header(sent[0].GetMessage(), sipmsg.GatewayAuthHeader); gw {
					t.Error("X-Gateway-Auth sent in registry auth mode")
				}
			})
		})
	}
}

func TestWrongCredentialsEndInAuthFailedAfterOneAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "mallory", "bad")}}
		req := &fakeRequester{answer: digestFake(false, "alice")}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("auth-failed", stateIs("t1", registration.StateAuthFailed)).Record
		h.stop()
		if n := len(req.requests()); n != 2 {
			t.Errorf("%d REGISTERs, want exactly 2 (one unauthenticated, one authenticated)", n)
		}
		if wait := time.Until(rec.NextActionAt); wait < 50*time.Minute {
			t.Errorf("auth-failed retried in %s, want the long auth-failed interval", wait)
		}
		if strings.Contains(rec.LastError, "bad") {
			t.Errorf("last error leaks the password: %q", rec.LastError)
		}
	})
}

func TestEdgePortModeSendsGatewayAuthAndTakesChallengeAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.AuthMode = config.AuthEdgePort
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw"), mkTrunk("t2", "sip.two.net", "bob", "")}}
		req := &fakeRequester{answer: digestFake(false, "nobody")}
		h := start(t, spec, api, req, nil)
		h.waitFor("t1 auth-failed", stateIs("t1", registration.StateAuthFailed))
		h.stop()
		for _, r := range req.requests() {
			v, ok := sipmsg.Header(r.GetMessage(), sipmsg.GatewayAuthHeader)
			if !ok || v == "" {
				t.Errorf("REGISTER without X-Gateway-Auth in edgeport mode")
			}
			if r.GetMessage().GetAuthorization() != nil {
				t.Errorf("registry answered a challenge in edgeport mode")
			}
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
