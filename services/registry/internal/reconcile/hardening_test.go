package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/trunk"
	"sipreg.dev/services/registry/internal/watch"
)

// leaseOwn is an ownership whose only lease, with fence 1, the test turns on and off.
type leaseOwn struct {
	ownership.All
	valid atomic.Bool
}

func (c *leaseOwn) ID() string { return "self" }
func (c *leaseOwn) Valid(string) (int64, bool) {
	return 1, c.valid.Load()
}

// TestLeaseCheckedAtTheSend: a REGISTER that waited for its turn in the rate limiter
// while the lease ran out is dropped, not sent.
func TestLeaseCheckedAtTheSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		own := &leaseOwn{}
		own.valid.Store(true)
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(600), nil
		}}
		spec := testSpec()
		spec.RegistersPerSecond = 1
		r := New(Options{Spec: spec, Store: storetest.NewMemory(), Requester: req, Ownership: own})
		if !r.limiter.Allow() {
			t.Fatal("the limiter had no token to take")
		}
		rec := registration.Record{TrunkRef: "t1", CallID: "c1", CSeq: 2, CSeqCeiling: 10, Owner: "self", Fence: 1}
		done := make(chan error, 1)
		go func() {
			_, _, err := r.sender(&rec, rec)(t.Context(), &requesterv2beta1.SendMessageRequest{}, true)
			done <- err
		}()
		synctest.Wait() // the send waits for a token
		own.valid.Store(false)
		if err := <-done; !errors.Is(err, errNotOwner) {
			t.Fatalf("send after the lease ran out = %v, want errNotOwner", err)
		}
		if n := len(req.requests()); n != 0 {
			t.Fatalf("%d REGISTERs sent without a lease", n)
		}
	})
}

// flakyStore fails every write (and Ping) while down is set.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

var errStoreDown = errors.New("store down (test)")

func (f *flakyStore) Put(ctx context.Context, rec registration.Record) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Put(ctx, rec)
}

func (f *flakyStore) PutMany(ctx context.Context, recs []registration.Record) ([]string, error) {
	if f.down.Load() {
		return nil, errStoreDown
	}
	return f.Store.PutMany(ctx, recs)
}

func (f *flakyStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Ping(ctx)
}

// checkCSeqs fails when a Call-ID's CSeq did not strictly increase over sent, in order.
func checkCSeqs(t *testing.T, sent []*requesterv2beta1.SendMessageRequest) {
	t.Helper()
	last := map[string]int{}
	for i, req := range sent {
		id := req.GetMessage().GetCallId().GetCallId()
		n := cseqOf(t, req)
		if prev, seen := last[id]; seen && n <= prev {
			t.Errorf("REGISTER %d: Call-ID %s CSeq %d after %d: reused or going back", i, id, n, prev)
		}
		last[id] = n
	}
}

// TestCSeqNeverReusedAfterUnwrittenSends: refreshes sent while the store could not be
// written are never repeated by whoever continues the binding from the store; and no
// REGISTER goes out above the ceiling the store holds.
func TestCSeqNeverReusedAfterUnwrittenSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := storetest.NewMemory()
		st := &flakyStore{Store: shared}
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
		req := &fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
			return ok(2), nil
		}}
		small := func(r *Reconciler) { r.cseqBlock = 3 }
		a := start(t, testSpec(), api, req, st, small)
		first := a.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
		var stored registration.Record
		waitUntil(t, "the outcome written", func() bool {
			var err error
			stored, err = shared.Get(t.Context(), "t1")
			return err == nil && stored.State == registration.StateRegistered
		})
		if stored.CSeqCeiling < first.CSeq+3 {
			t.Fatalf("stored ceiling %d, want at least CSeq %d + 3", stored.CSeqCeiling, first.CSeq)
		}

		st.down.Store(true)
		// Refreshes go on under the stored ceiling, then stop short of it: the next CSeq
		// would need a reservation the store cannot take.
		a.waitFor("stopped at the ceiling", func(ev watch.Event) bool {
			return ev.Record.TrunkRef == "t1" && ev.Record.State == registration.StateRetrying
		})
		a.stop()
		for _, r := range req.requests() {
			if n := cseqOf(t, r); uint32(n) > stored.CSeqCeiling {
				t.Fatalf("CSeq %d sent above the durable ceiling %d", n, stored.CSeqCeiling)
			}
		}
		sentByA := len(req.requests())
		if sentByA < 2 {
			t.Fatalf("only %d REGISTERs before the ceiling: no refresh ran while the store was down", sentByA)
		}

		st.down.Store(false)
		b := start(t, testSpec(), api, req, st, small)
		b.waitFor("registered by the next process", stateIs("t1", registration.StateRegistered))
		b.stop()
		all := req.requests()
		if len(all) == sentByA {
			t.Fatal("the next process sent nothing")
		}
		if id := all[sentByA].GetMessage().GetCallId().GetCallId(); id != first.CallID {
			t.Fatalf("the next process used Call-ID %s, want the binding's %s", id, first.CallID)
		}
		checkCSeqs(t, all)
	})
}

// TestShutdownCancelLeavesRecord: a REGISTER cut by our own shutdown leaves the record as
// it was before the attempt (state, failures, next action), not as a failure.
func TestShutdownCancelLeavesRecord(t *testing.T) {
	st := storetest.NewMemory()
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.a.example", "alice", "")}}
	req := &hangingRequester{fakeRequester: fakeRequester{answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(600), nil
	}}}
	spec := testSpec()
	spec.ShutdownTimeout = 50 * time.Millisecond
	log := slog.New(slog.DiscardHandler)
	r := New(Options{Spec: spec, Store: st, Trunks: api, Requester: req, Logger: log})
	events, unsub := subscribeChan(r, 1000)
	defer unsub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var before registration.Record
	for ev := range events {
		if ev.Record.State == registration.StateRegistered {
			before = ev.Record
			break
		}
	}
	req.hang.Store(true)
	go func() { _, _ = r.Force(context.Background(), "t1") }()
	waitUntil(t, "the forced REGISTER in flight", func() bool { return len(req.requests()) == 2 })
	cancel() // SIGTERM: the REGISTER in flight is cut at the shutdown deadline
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after, err := st.Get(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if after.State != before.State || after.Failures != before.Failures || after.NextAction != before.NextAction ||
		!after.NextActionAt.Equal(before.NextActionAt) || after.LastError != "" {
		t.Fatalf("record after a shutdown-cut REGISTER:\n got %s failures=%d next=%s@%v err=%q\nwant %s failures=%d next=%s@%v",
			after.State, after.Failures, after.NextAction, after.NextActionAt, after.LastError,
			before.State, before.Failures, before.NextAction, before.NextActionAt)
	}
	if after.TopCSeq() <= before.CSeq+1 {
		t.Fatalf("stored CSeq %d (ceiling %d) after the cut REGISTER CSeq %d: it could be reused", after.CSeq, after.CSeqCeiling, before.CSeq+1)
	}
}

// hangingRequester answers like fakeRequester until hang is set; from then on it
// holds every call (but unregisters, with spareUnregisters) until the caller's context
// ends.
type hangingRequester struct {
	fakeRequester
	hang             atomic.Bool
	spareUnregisters bool
}

func (h *hangingRequester) SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	if !h.hang.Load() || h.spareUnregisters && expiresOf(req) == 0 {
		return h.fakeRequester.SendMessage(ctx, req)
	}
	h.mu.Lock()
	h.sent = append(h.sent, req)
	h.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestUnregisterOnShutdownAfterDrainDeadline: when the drain of REGISTERs in flight
// runs into shutdownTimeout, the unregisters still go out (they have a deadline of
// their own), and a record is marked unregistered only when its unregister succeeded.
func TestUnregisterOnShutdownAfterDrainDeadline(t *testing.T) {
	st := storetest.NewMemory()
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", ""), mkTrunk("t2", "sip.two.net", "bob", "")}}
	req := &hangingRequester{spareUnregisters: true, fakeRequester: fakeRequester{answer: func(r *requesterv2beta1.SendMessageRequest, _ int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(int32(expiresOf(r))), nil
	}}}
	spec := testSpec()
	spec.UnregisterOnStop, spec.ShutdownTimeout = true, 100*time.Millisecond
	r := New(Options{Spec: spec, Store: st, Trunks: api, Requester: req})
	events, unsub := subscribeChan(r, 1000)
	defer unsub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	registered := map[string]bool{}
	for ev := range events {
		if ev.Record.State == registration.StateRegistered {
			registered[ev.Record.TrunkRef] = true
		}
		if len(registered) == 2 {
			break
		}
	}
	req.hang.Store(true)
	go func() { _, _ = r.Force(context.Background(), "t1") }()
	waitUntil(t, "the forced REGISTER in flight", func() bool { return len(req.requests()) == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	zero := 0
	for _, r := range req.requests() {
		if expiresOf(r) == 0 {
			zero++
		}
	}
	if zero != 2 {
		t.Fatalf("%d unregisters after the drain deadline, want 2", zero)
	}
	for _, ref := range []string{"t1", "t2"} {
		rec, err := st.Get(context.Background(), ref)
		if err != nil || rec.State != registration.StateUnregistered {
			t.Errorf("%s after shutdown: %s, %v; want unregistered", ref, rec.State, err)
		}
	}
}

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
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }() // also when the test fails: the bubble ends clean
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

// claimCoord owns every trunk and counts claims in progress at once.
type claimCoord struct {
	ownership.Coordinator
	mu        sync.Mutex
	active    int
	maxActive int
	claimed   map[string]int
	gate      chan struct{}
}

func (c *claimCoord) ID() string                                    { return "self" }
func (c *claimCoord) Owner(string) string                           { return "self" }
func (c *claimCoord) LeaseTTL() time.Duration                       { return 10 * time.Second }
func (c *claimCoord) Members() []cluster.Member                     { return []cluster.Member{{ID: "self"}} }
func (c *claimCoord) Valid(ref string) (int64, bool)                { return 1, true }
func (c *claimCoord) Leaving(context.Context, string) (bool, error) { return false, nil }

func (c *claimCoord) Claim(ctx context.Context, refs []string) (map[string]int64, error) {
	c.mu.Lock()
	c.active++
	c.maxActive = max(c.maxActive, c.active)
	c.mu.Unlock()
	<-c.gate
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	got := map[string]int64{}
	for _, ref := range refs {
		c.claimed[ref]++
		got[ref] = int64(c.claimed[ref])
	}
	return got, nil
}

// TestReconcileDesiredIsSingleFlight: the discovery tick and the lease loop applying a
// desired set at the same time never claim at once, and a trunk is claimed once.
func TestReconcileDesiredIsSingleFlight(t *testing.T) {
	coord := &claimCoord{claimed: map[string]int{}, gate: make(chan struct{})}
	st := storetest.NewMemory()
	r := New(Options{Spec: testSpec(), Store: st, Ownership: ownership.NewLeases(coord, st, nil, nil)})
	t1, err := trunk.FromProto(mkTrunk("t1", "sip.a.example", "alice", ""))
	set := []desired.Trunk{{Trunk: t1, Err: err}}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.reconcileDesired(context.Background(), set)
		}()
	}
	waitUntil(t, "a claim in progress", func() bool {
		coord.mu.Lock()
		defer coord.mu.Unlock()
		return coord.active > 0
	})
	close(coord.gate)
	wg.Wait()
	if coord.maxActive != 1 {
		t.Fatalf("%d claims ran at once", coord.maxActive)
	}
	if n := coord.claimed["t1"]; n != 1 {
		t.Fatalf("t1 claimed %d times, want once", n)
	}
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

// waitUntil polls cond until it holds, failing after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
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
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
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

// leaseCoordinator names ownership.Coordinator apart from this package's Coordinator,
// for a fake that is both.
type leaseCoordinator = ownership.Coordinator

// followerCoord is a replica that never leads discovery; the leader's desired set is
// published once the test says so. It counts the fetches.
type followerCoord struct {
	Coordinator
	leaseCoordinator
	mu        sync.Mutex
	fetches   int
	published bool
}

func (c *followerCoord) ID() string              { return "self" }
func (c *followerCoord) Owner(string) string     { return "other" }
func (c *followerCoord) LeaseTTL() time.Duration { return 3 * time.Second }
func (c *followerCoord) Members() []cluster.Member {
	return []cluster.Member{{ID: "self"}, {ID: "other"}}
}
func (c *followerCoord) MembersChanged() <-chan struct{}                           { return nil }
func (c *followerCoord) Renew(context.Context) ([]string, error)                   { return nil, nil }
func (c *followerCoord) Held() map[string]int64                                    { return nil }
func (c *followerCoord) MarkLeaving(context.Context) error                         { return nil }
func (c *followerCoord) Release(context.Context, []string) error                   { return nil }
func (c *followerCoord) TryDiscovery(context.Context, time.Duration) (bool, error) { return false, nil }

func (c *followerCoord) FetchDesired(_ context.Context, have string) ([]byte, string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetches++
	if !c.published {
		return nil, "", false, nil
	}
	return nil, "v1", have != "v1", nil
}

func (c *followerCoord) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// TestFollowerAsksEverySecondUntilPublished: a replica started before the discovery
// leader published asks for the desired set every second, not a registerInterval later;
// once it has one, it asks once per registerInterval.
func TestFollowerAsksEverySecondUntilPublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		coord := &followerCoord{}
		st := storetest.NewMemory()
		r := New(Options{Spec: testSpec(), Store: st, Coord: coord, Ownership: ownership.NewLeases(coord, st, nil, nil)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		time.Sleep(coord.LeaseTTL()/3 + 5*time.Second + time.Millisecond)
		synctest.Wait()
		if n := coord.count(); n < 5 {
			t.Fatalf("%d fetches in 5 s with nothing published, want one a second (registerInterval is %v)", n, testSpec().RegisterInterval)
		}
		coord.mu.Lock()
		coord.published = true
		coord.mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		if _, known := r.src.Last(); !known {
			t.Fatal("the published desired set was not applied")
		}
		after := coord.count()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := coord.count() - after; n != 0 {
			t.Fatalf("%d fetches in 10 s once the set was known, want none before registerInterval (%v)", n, testSpec().RegisterInterval)
		}
	})
}
