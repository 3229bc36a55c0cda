package reconcile

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// TestForceCoalesces: forces that come while a REGISTER of the trunk is in flight take
// its outcome, and a loop of forces sends at most one REGISTER per ForceInterval.
func TestForceCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			time.Sleep(300 * time.Millisecond) // the registrar's answer takes a while (fake time)
			return ok(600), nil
		}}
		spec := testSpec()
		spec.ForceInterval = time.Second
		r := New(Options{Spec: spec, Store: storetest.NewMemory(), Trunks: api, Requester: req})
		ctx := runBackground(t, r)
		synctest.Wait()
		time.Sleep(time.Second) // first registration done (fake time)
		base := len(req.requests())
		if base != 1 {
			t.Fatalf("%d REGISTERs at start, want 1", base)
		}

		// Three forces at once: one REGISTER, one outcome for all.
		var wg sync.WaitGroup
		got := make([]registration.Record, 3)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], _ = r.Force(ctx, "t1")
			}()
		}
		wg.Wait()
		if n := len(req.requests()) - base; n != 1 {
			t.Fatalf("3 concurrent forces sent %d REGISTERs, want 1", n)
		}
		for i := range got {
			if got[i].CSeq != got[0].CSeq {
				t.Fatalf("forces got outcomes of different REGISTERs: CSeq %d and %d", got[0].CSeq, got[i].CSeq)
			}
		}

		// A loop of forces for 10 s: at most one REGISTER per second.
		base = len(req.requests())
		start := time.Now()
		calls := 0
		for time.Since(start) < 10*time.Second {
			if _, err := r.Force(ctx, "t1"); err != nil {
				t.Fatal(err)
			}
			calls++
		}
		if n := len(req.requests()) - base; n > 11 || n != calls {
			t.Fatalf("%d forces in 10 s sent %d REGISTERs, want one per force and at most 11", calls, n)
		}
	})
}

func TestLimiterBurstIsATenthOfTheRate(t *testing.T) {
	for _, c := range []struct {
		rps  float64
		want int
	}{{0.5, 1}, {1, 1}, {10, 1}, {50, 5}, {100, 10}, {1000, 100}} {
		l := newLimiter(c.rps)
		if got := l.Burst(); got != c.want {
			t.Errorf("rate %v: burst %d, want %d", c.rps, got, c.want)
		}
		// After an idle spell, what may go out at once is the burst, not a second's worth.
		if avail := l.TokensAt(time.Now().Add(time.Hour)); avail > float64(c.want) {
			t.Errorf("rate %v: %v tokens after an hour idle, want at most %d", c.rps, avail, c.want)
		}
	}
}

// lapseObserver counts lapses.
type lapseObserver struct {
	nopObserver
	lapsed atomic.Int64
}

func (o *lapseObserver) Lapsed() { o.lapsed.Add(1) }

// TestFallingBehindIsVisible: with a rate cap too low for the grants, a refresh starts
// after its binding expired: counted, and Lapsing says so (for /healthz); the capacity
// check warns once per episode.
func TestFallingBehindIsVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(2), nil // refreshed after 1 s
		}}
		spec := testSpec()
		spec.RegistersPerSecond = 0.2 // one REGISTER every 5 s
		obs := &lapseObserver{}
		r := New(Options{Spec: spec, Store: storetest.NewMemory(), Trunks: api, Requester: req, Observer: obs})
		runBackground(t, r)
		if lapsing, _ := r.Lapsing(); lapsing {
			t.Fatal("lapsing before anything was registered")
		}
		time.Sleep(12 * time.Second) // fake time: the first refresh waits ~5 s for a token
		if obs.lapsed.Load() == 0 {
			t.Fatal("no lapse counted: the refresh came after the 2 s binding expired")
		}
		if lapsing, why := r.Lapsing(); !lapsing || !strings.Contains(why, "registersPerSecond") {
			t.Fatalf("Lapsing = %v %q, want true naming the cap", lapsing, why)
		}
	})
}
