package reconcile

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/config"
)

func TestStartupWindow(t *testing.T) {
	for _, c := range []struct {
		spread time.Duration
		auto   bool
		n      int
		want   time.Duration
	}{
		{0, true, 0, 0},
		{0, true, 1, 50 * time.Microsecond},
		{0, true, 2000, 100 * time.Millisecond},
		{0, true, 20000, time.Second},
		{0, true, 100000, 5 * time.Second},
		{0, true, 1000000, 5 * time.Second},
		// Given in the file: used exactly, whatever the number of trunks.
		{0, false, 100000, 0},
		{5 * time.Second, false, 10, 5 * time.Second},
		{2 * time.Second, false, 100000, 2 * time.Second},
	} {
		spec := testSpec()
		spec.StartupSpread, spec.StartupSpreadAuto = c.spread, c.auto
		r := New(Options{Spec: spec})
		if got := r.startupWindow(c.n); got != c.want {
			t.Errorf("startupSpread %v (auto %v), %d trunks: window %v, want %v", c.spread, c.auto, c.n, got, c.want)
		}
	}
}

// timedAPI is a fakeAPI that notes when it was first asked.
type timedAPI struct {
	fakeAPI
	first time.Time
}

func (f *timedAPI) FindRegisteringRaw(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	if f.first.IsZero() {
		f.first = time.Now()
	}
	f.mu.Unlock()
	return f.fakeAPI.FindRegisteringRaw(ctx)
}

// firstRegisters starts a registry over n trunks with spec in a synctest bubble, waits
// a minute of fake time and returns when the first FindBy was made and when each trunk's
// first REGISTER went out.
func firstRegisters(t *testing.T, spec config.Spec, n int) (findBy time.Time, sent []time.Time) {
	t.Helper()
	trunks := make([]*trunksv2beta1.Trunk, n)
	for i := range trunks {
		trunks[i] = mkTrunk(fmt.Sprintf("t%d", i), fmt.Sprintf("sip%d.example", i%50), fmt.Sprintf("u%d", i), "")
	}
	api := &timedAPI{fakeAPI: fakeAPI{trunks: trunks}}
	var mu sync.Mutex
	req := &fakeRequester{noRecord: true, answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		mu.Lock()
		sent = append(sent, time.Now())
		mu.Unlock()
		return ok(600), nil // the next REGISTER of each is minutes away
	}}
	// The memory cache (no store): the times are the schedule's, with no group commit.
	r := New(Options{Spec: spec, Trunks: api, Requester: req})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	time.Sleep(time.Minute)
	cancel()
	<-done
	if len(sent) != n {
		t.Fatalf("%d REGISTERs sent, want %d (one per trunk)", len(sent), n)
	}
	return api.first, sent
}

func span(ts []time.Time) (first, last time.Time) {
	first, last = ts[0], ts[0]
	for _, t := range ts {
		if t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	return first, last
}

// TestDefaultsRegister2000TrunksIn100ms: with the defaults (no rate cap, startupSpread
// left out), 2,000 trunks are all registered within 0.1 s of the first FindBy, spread
// over that window rather than sent at one instant; an explicit 5s spreads them over 5 s.
func TestDefaultsRegister2000TrunksIn100ms(t *testing.T) {
	const n = 2000
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.MaxInFlight, spec.RegistersPerSecond = 64, 0
		spec.StartupSpread, spec.StartupSpreadAuto = 0, true
		findBy, sent := firstRegisters(t, spec, n)
		first, last := span(sent)
		if first.Before(findBy) || last.Sub(findBy) >= 100*time.Millisecond {
			t.Errorf("first REGISTERs from %v to %v after the first FindBy, want all within 100ms", first.Sub(findBy), last.Sub(findBy))
		}
		// 2,000 uniform draws over 0.1 s all within 0.05 s: odds far below 1e-100.
		if last.Sub(first) < 50*time.Millisecond {
			t.Errorf("first REGISTERs within %v: not spread over the 0.1 s window", last.Sub(first))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.MaxInFlight, spec.RegistersPerSecond = 64, 0
		spec.StartupSpread, spec.StartupSpreadAuto = 5*time.Second, false
		findBy, sent := firstRegisters(t, spec, n)
		first, last := span(sent)
		if first.Before(findBy) || last.Sub(findBy) >= 5*time.Second || last.Sub(first) < 4*time.Second {
			t.Errorf("first REGISTERs from %v to %v after the first FindBy, want them spread over 5 s", first.Sub(findBy), last.Sub(findBy))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// startupSpread: 0 given: all at once.
		spec := testSpec()
		spec.MaxInFlight, spec.RegistersPerSecond = 64, 0
		spec.StartupSpread, spec.StartupSpreadAuto = 0, false
		findBy, sent := firstRegisters(t, spec, n)
		if first, last := span(sent); !first.Equal(findBy) || !last.Equal(findBy) {
			t.Errorf("first REGISTERs from %v to %v after the first FindBy, want all at once", first.Sub(findBy), last.Sub(findBy))
		}
	})
}
