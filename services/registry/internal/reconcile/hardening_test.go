package reconcile

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
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
