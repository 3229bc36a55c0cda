package reconcile

import (
	"context"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/trunk"
)

// TestTakeoverWritesCeilingFirst: a trunk taken over from a replica that died is
// written (new owner and fence, a CSeq ceiling above every CSeq the dead one can have
// sent) before its refresh is scheduled, so that its first REGISTER needs no
// reservation of its own; the refresh is due within a second.
func TestTakeoverWritesCeilingFirst(t *testing.T) {
	t1, err := trunk.FromProto(mkTrunk("t1", "sip.a.example", "alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.NewMemory()
	t0 := time.Now()
	dead := registration.Record{
		TrunkRef: "t1", TrunkName: t1.Name, Fingerprint: t1.Fingerprint(),
		State: registration.StateRegistered, CallID: "call-1", FromTag: "tag-1",
		CSeq: 7, CSeqCeiling: 107, Owner: "dead", Fence: 4,
		ExpiresAt: t0.Add(10 * time.Minute), NextAction: registration.ActionRefresh, NextActionAt: t0.Add(5 * time.Minute),
	}
	if err := st.Put(t.Context(), dead); err != nil {
		t.Fatal(err)
	}
	now := t0
	clock := func() time.Time { return now }
	coord := &claimCoord{claimed: map[string]int{}, gate: make(chan struct{})}
	close(coord.gate)
	r := New(Options{Spec: testSpec(), Store: st, Ownership: ownership.NewLeases(coord, st, nil, clock)})
	now = t0.Add(11 * time.Second) // settled: the members were watched for a lease TTL
	r.reconcileDesired(context.Background(), []desired.Trunk{{Trunk: t1}})

	got, err := st.Get(t.Context(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != "self" || got.Fence != 1 || got.CallID != "call-1" || got.State != registration.StateRegistered {
		t.Fatalf("stored after the takeover: owner %q fence %d call-id %q state %s; want self, 1, call-1, registered",
			got.Owner, got.Fence, got.CallID, got.State)
	}
	first := dead.TopCSeq() + 1
	if got.CSeqCeiling < first {
		t.Fatalf("stored ceiling %d does not cover the first REGISTER's CSeq %d", got.CSeqCeiling, first)
	}
	if !r.covered(&registration.Record{TrunkRef: "t1", CallID: "call-1", CSeq: first}) {
		t.Fatalf("CSeq %d still needs a reservation after the takeover's write", first)
	}
	r.mu.Lock()
	e := r.entries["t1"]
	claiming := e.claiming
	r.mu.Unlock()
	if claiming {
		t.Fatal("the entry still waits for its claim's write")
	}
	if at := r.sched.Next(e); at.IsZero() || at.Before(now) || at.After(now.Add(time.Second)) {
		t.Fatalf("refresh scheduled at %v, want within a second of %v", at, now)
	}
}
