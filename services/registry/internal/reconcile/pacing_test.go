package reconcile

import (
	"context"
	"fmt"
	"sync"
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
)

func TestFailoverToNextURIOnTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := mkTrunk("t1", "sip.a.example", "alice", "")
		tr.Uris = append(tr.Uris, &trunksv2beta1.TrunkURI{Host: "sip.b.example", Port: 5080, Transport: "TCP", User: "alice", Priority: 2, Enabled: true})
		tr.Uris[0].Priority = 1
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{tr}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			if r.GetTarget() == "sip.a.example:5060" {
				return response(sipmessagev2beta1.ResponseType_REQUEST_TIMEOUT, "Request Timeout"), nil
			}
			return ok(600), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		if rec.Target != "sip.b.example:5080" || rec.Transport != "tcp" {
			t.Errorf("registered at %s/%s, want the second URI sip.b.example:5080/tcp", rec.Target, rec.Transport)
		}
		sent := req.requests()
		if len(sent) != 2 || sent[0].GetTarget() != "sip.a.example:5060" {
			t.Errorf("want the first REGISTER to the best URI, then the next")
		}
	})
}

func TestFailoverToNextEdgePort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.EdgePorts = []config.EdgePort{
			{Address: "edge1:5060", Host: "edge1", Port: 5060},
			{Address: "edge2:5060", Host: "edge2", Port: 5060},
		}
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			if r.GetMessage().GetRoute()[0].GetAddress().GetUri().GetHost() == "edge1" {
				return nil, status.Error(codes.Unavailable, "edge1 down")
			}
			return ok(600), nil
		}}
		h := start(t, spec, api, req, nil)
		rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		if rec.EdgePort != "edge2:5060" {
			t.Errorf("registered through %s, want edge2:5060", rec.EdgePort)
		}
	})
}

// TestSlowProviderDoesNotStarveOthers: one provider that never answers may hold only
// its share of the workers; trunks of other providers register meanwhile.
func TestSlowProviderDoesNotStarveOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.MaxInFlight = 8 // 2 per target
		var trunks []*trunksv2beta1.Trunk
		for i := range 10 {
			trunks = append(trunks, mkTrunk(fmt.Sprintf("slow%d", i), "sip.slow.example", fmt.Sprintf("s%d", i), ""))
		}
		for i := range 6 {
			trunks = append(trunks, mkTrunk(fmt.Sprintf("fast%d", i), fmt.Sprintf("sip.fast%d.example", i), fmt.Sprintf("f%d", i), ""))
		}
		release := make(chan struct{})
		var mu sync.Mutex
		slowInFlight, maxSlow := 0, 0
		api := &fakeAPI{trunks: trunks}
		req := &fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
			if r.GetTarget() == "sip.slow.example:5060" {
				mu.Lock()
				slowInFlight++
				maxSlow = max(maxSlow, slowInFlight)
				mu.Unlock()
				<-release
				mu.Lock()
				slowInFlight--
				mu.Unlock()
			}
			return ok(600), nil
		}}
		h := start(t, spec, api, req, nil)
		for i := range 6 {
			h.waitFor("fast trunk registered", stateIs(fmt.Sprintf("fast%d", i), registration.StateRegistered))
		}
		close(release)
		for i := range 10 {
			h.waitFor("slow trunk registered", stateIs(fmt.Sprintf("slow%d", i), registration.StateRegistered))
		}
		if maxSlow > 2 {
			t.Errorf("%d REGISTERs in flight to one provider, cap is 2", maxSlow)
		}
	})
}

// TestStartupSpread: first REGISTERs after a start are spread over the window.
func TestStartupSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.StartupSpread = 2 * time.Second
		var trunks []*trunksv2beta1.Trunk
		for i := range 20 {
			trunks = append(trunks, mkTrunk(fmt.Sprintf("t%d", i), fmt.Sprintf("sip%d.example", i), "u", ""))
		}
		var mu sync.Mutex
		var times []time.Time
		api := &fakeAPI{trunks: trunks}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			return ok(600), nil
		}}
		h := start(t, spec, api, req, nil)
		for i := range 20 {
			h.waitFor("registered", stateIs(fmt.Sprintf("t%d", i), registration.StateRegistered))
		}
		mu.Lock()
		defer mu.Unlock()
		first, last := times[0], times[0]
		for _, ts := range times {
			if ts.Before(first) {
				first = ts
			}
			if ts.After(last) {
				last = ts
			}
		}
		// 20 uniform draws over 2 s all landing within 0.5 s has odds below 1e-11.
		if last.Sub(first) < 500*time.Millisecond {
			t.Errorf("20 first REGISTERs within %s: not spread over the 2 s window", last.Sub(first))
		}
	})
}

// TestForceUnknown: Force of a trunk the registry does not know is an error.
func TestForceUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(600), nil
		}}
		h := start(t, testSpec(), api, req, nil)
		if _, err := h.r.Force(context.Background(), "nope"); err == nil {
			t.Error("Force of an unknown trunk succeeded")
		}
	})
}

// TestNoRateCap: registersPerSecond 0 lets any number of REGISTERs through at once.
func TestNoRateCap(t *testing.T) {
	l := newLimiter(0)
	for i := range 100000 {
		if !l.Allow() {
			t.Fatalf("REGISTER %d held back with no rate cap", i)
		}
	}
}

// TestMaxInFlightBoundsSendMessage: however many workers run, at most spec.maxInFlight
// SendMessage calls are in flight at once, and that many are used.
func TestMaxInFlightBoundsSendMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.MaxInFlight = 3
		var trunks []*trunksv2beta1.Trunk
		for i := range 40 {
			trunks = append(trunks, mkTrunk(fmt.Sprintf("t%d", i), fmt.Sprintf("sip%d.example", i), "u", ""))
		}
		var mu sync.Mutex
		cur, peak := 0, 0
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			time.Sleep(100 * time.Millisecond) // the registrar's answer takes a while (fake time)
			mu.Lock()
			cur--
			mu.Unlock()
			return ok(600), nil
		}}
		h := start(t, spec, &fakeAPI{trunks: trunks}, req, nil)
		for i := range 40 {
			h.waitFor("registered", stateIs(fmt.Sprintf("t%d", i), registration.StateRegistered))
		}
		mu.Lock()
		defer mu.Unlock()
		if peak != spec.MaxInFlight {
			t.Errorf("peak SendMessage calls in flight %d, want maxInFlight %d", peak, spec.MaxInFlight)
		}
	})
}
