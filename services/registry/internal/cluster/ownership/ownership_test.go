package ownership

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// fakeCoord grants every claim with fence 7 unless taken lists the ref; leaving lists
// the replicas that said they were leaving.
type fakeCoord struct {
	Coordinator
	members []cluster.Member
	taken   map[string]bool
	left    map[string]time.Duration // of the leases in taken
	leaving map[string]bool
	claims  int
}

func (c *fakeCoord) ID() string                { return "me" }
func (c *fakeCoord) LeaseTTL() time.Duration   { return 10 * time.Second }
func (c *fakeCoord) Members() []cluster.Member { return c.members }
func (c *fakeCoord) Owner(ref string) string   { return cluster.Rendezvous(c.members, ref) }
func (c *fakeCoord) Leaving(_ context.Context, id string) (bool, error) {
	return c.leaving[id], nil
}

func (c *fakeCoord) ClaimNext(_ context.Context, refs []string) (map[string]int64, time.Duration, error) {
	c.claims++
	got := map[string]int64{}
	var freeIn time.Duration
	for _, ref := range refs {
		if !c.taken[ref] {
			got[ref] = 7
		} else {
			freeIn = max(freeIn, c.left[ref])
		}
	}
	return got, freeIn, nil
}

// clockAt is a clock the test moves.
type clockAt struct{ now time.Time }

func (c *clockAt) Now() time.Time { return c.now }

func claimAll(t *testing.T, l *Leases, refs ...string) map[string]Claimed {
	t.Helper()
	out := map[string]Claimed{}
	var order []string
	l.Claim(t.Context(), refs, func(cs []Claimed) {
		for _, c := range cs {
			out[c.Ref] = c
			order = append(order, c.Ref)
		}
	})
	if want := slices.DeleteFunc(slices.Clone(refs), func(ref string) bool { _, ok := out[ref]; return !ok }); !slices.Equal(order, want) {
		t.Fatalf("take called in order %v, want the order of refs %v", order, want)
	}
	return out
}

// TestClaimTakeover: a registered binding of a replica that died is refreshed within a
// second; one of a replica that left on purpose, one not registered, and any claimed
// before this replica watched the members for a lease TTL keep their schedule.
func TestClaimTakeover(t *testing.T) {
	st := storetest.NewMemory()
	put := func(ref, owner string, state registration.State) {
		if err := st.Put(t.Context(), registration.Record{TrunkRef: ref, Owner: owner, State: state, CallID: "c-" + ref}); err != nil {
			t.Fatal(err)
		}
	}
	put("dead-registered", "dead", registration.StateRegistered)
	put("dead-retrying", "dead", registration.StateRetrying)
	put("left-registered", "left", registration.StateRegistered)
	put("mine-registered", "me", registration.StateRegistered)
	coord := &fakeCoord{members: []cluster.Member{{ID: "me"}}, leaving: map[string]bool{"left": true}, taken: map[string]bool{"taken": true}}
	clock := &clockAt{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	l := NewLeases(coord, st, nil, clock.Now)
	refs := []string{"dead-registered", "dead-retrying", "left-registered", "mine-registered", "fresh", "taken"}

	early := claimAll(t, l, refs...)
	if c := early["dead-registered"]; c.Takeover || c.From != "dead" || c.Fence != 7 || c.Record == nil || c.Record.CallID != "c-dead-registered" {
		t.Fatalf("claimed before the members settled: %+v; want no takeover, from dead, fence 7, the stored record", c)
	}

	clock.now = clock.now.Add(11 * time.Second)
	got := claimAll(t, l, refs...)
	if len(got) != 5 {
		t.Fatalf("claimed %d trunks, want all but the one another replica holds", len(got))
	}
	c := got["dead-registered"]
	// A piece of 5 trunks: its takeovers' refreshes fall within the least window, 1 ms
	// (2000 trunks: 100 ms).
	if takeoverSpread(2000) != 100*time.Millisecond {
		t.Errorf("takeovers of a piece of 2000 spread over %v, want 100ms", takeoverSpread(2000))
	}
	if within := time.Millisecond; !c.Takeover || c.RefreshAt.Before(clock.now) || !c.RefreshAt.Before(clock.now.Add(within)) {
		t.Fatalf("dead owner's registered binding: %+v; want a takeover refreshed within %v", c, within)
	}
	for _, ref := range []string{"dead-retrying", "left-registered", "mine-registered", "fresh"} {
		if got[ref].Takeover {
			t.Errorf("%s taken over; want its schedule kept", ref)
		}
	}
	if got["fresh"].Record != nil || got["mine-registered"].From != "" || got["left-registered"].From != "left" {
		t.Errorf("fresh %+v, mine %+v, left %+v", got["fresh"], got["mine-registered"], got["left-registered"])
	}
	if l.unclaimed != 1 {
		t.Errorf("unclaimed = %d, want 1 (the trunk another replica holds)", l.unclaimed)
	}
}

// TestReclaimHoldsClaims: after leases vanished and were taken back, nothing else is
// claimed for a lease TTL, and what waits is counted as unclaimed for the retries.
func TestReclaimHoldsClaims(t *testing.T) {
	coord := &fakeCoord{members: []cluster.Member{{ID: "me"}}, taken: map[string]bool{"gone": true}}
	clock := &clockAt{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	l := NewLeases(coord, storetest.NewMemory(), nil, clock.Now)
	back, gone := l.Reclaim(t.Context(), []string{"back", "gone"})
	if back["back"] != 7 || len(back) != 1 || !slices.Equal(gone, []string{"gone"}) {
		t.Fatalf("Reclaim = %v, %v; want back taken back, gone lost", back, gone)
	}
	claims := coord.claims
	if got := claimAll(t, l, "new"); len(got) != 0 || coord.claims != claims || l.unclaimed != 1 {
		t.Fatalf("claim during the hold: %v (%d claims asked), unclaimed %d; want nothing asked, 1 unclaimed", got, coord.claims-claims, l.unclaimed)
	}
	clock.now = clock.now.Add(10*time.Second + time.Millisecond)
	if got := claimAll(t, l, "new"); len(got) != 1 || l.unclaimed != 0 {
		t.Fatalf("claim after the hold: %v, unclaimed %d", got, l.unclaimed)
	}
}

// TestAll: one replica owns every trunk, always valid with fence 0.
func TestAll(t *testing.T) {
	var got []Claimed
	All{}.Claim(t.Context(), []string{"a", "b"}, func(cs []Claimed) { got = append(got, cs...) })
	if !slices.Equal(got, []Claimed{{Ref: "a"}, {Ref: "b"}}) {
		t.Fatalf("All.Claim = %+v", got)
	}
	if fence, ok := (All{}).Valid("a"); !ok || fence != 0 || !(All{}).Mine("a") || !(All{}).Alone() {
		t.Fatal("All does not own everything")
	}
}

// TestClaimInPieces: a claim of more than claimPiece trunks hands them to the engine a
// piece at a time (each after its own round trips, so the engine starts on the first
// while the next is claimed), in the order of refs, and counts what it could not claim
// over every piece, so that the retries are not skipped.
func TestClaimInPieces(t *testing.T) {
	coord := &fakeCoord{members: []cluster.Member{{ID: "me"}}, taken: map[string]bool{"r00001": true, "r02500": true}}
	l := NewLeases(coord, storetest.NewMemory(), nil, nil)
	refs := make([]string, claimPiece+claimPiece/2)
	for i := range refs {
		refs[i] = fmt.Sprintf("r%05d", i)
	}
	var sizes []int
	var order []string
	l.Claim(t.Context(), refs, func(cs []Claimed) {
		sizes = append(sizes, len(cs))
		for _, c := range cs {
			order = append(order, c.Ref)
		}
	})
	if !slices.Equal(sizes, []int{claimPiece - 1, claimPiece/2 - 1}) || coord.claims != 2 {
		t.Fatalf("take got pieces of %v after %d claims; want %d and %d after 2", sizes, coord.claims, claimPiece-1, claimPiece/2-1)
	}
	want := slices.DeleteFunc(slices.Clone(refs), func(ref string) bool { return coord.taken[ref] })
	if !slices.Equal(order, want) {
		t.Fatal("the pieces' trunks are not in the order of refs")
	}
	if l.unclaimed != 2 {
		t.Fatalf("unclaimed = %d, want 2 (one held elsewhere in each piece)", l.unclaimed)
	}
}

// TestRetryAtLeaseExpiry: trunks left unclaimed are tried again when the last lease
// that kept one runs out (over every piece of the claim), when that is sooner than
// RetryInterval; never sooner than retryMargin; at RetryInterval when no lease said
// when it runs out.
func TestRetryAtLeaseExpiry(t *testing.T) {
	clock := &clockAt{now: time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)}
	coord := &fakeCoord{members: []cluster.Member{{ID: "me"}},
		taken: map[string]bool{"r00001": true, "r02500": true, "r02600": true},
		left:  map[string]time.Duration{"r00001": 300 * time.Millisecond, "r02500": 120 * time.Millisecond}}
	l := NewLeases(coord, storetest.NewMemory(), nil, clock.Now)
	refs := make([]string, claimPiece+claimPiece/2)
	for i := range refs {
		refs[i] = fmt.Sprintf("r%05d", i)
	}
	ttl := coord.LeaseTTL()
	l.Claim(t.Context(), refs, func([]Claimed) {})
	if got, want := l.retryIn(ttl), 300*time.Millisecond+retryMargin; got != want {
		t.Errorf("retry in %v, want %v (the first piece's lease)", got, want)
	}
	clock.now = clock.now.Add(time.Second)
	if got := l.retryIn(ttl); got != retryMargin {
		t.Errorf("retry in %v once the lease ran out, want %v", got, retryMargin)
	}
	coord.left = map[string]time.Duration{"r00001": 2 * RetryInterval(ttl)}
	l.Claim(t.Context(), refs, func([]Claimed) {})
	if got := l.retryIn(ttl); got != RetryInterval(ttl) {
		t.Errorf("retry in %v with the first lease free in %v, want %v", got, 2*RetryInterval(ttl), RetryInterval(ttl))
	}
	coord.left = nil
	l.Claim(t.Context(), refs, func([]Claimed) {})
	if got := l.retryIn(ttl); got != RetryInterval(ttl) {
		t.Errorf("retry in %v with no lease's expiry known, want %v", got, RetryInterval(ttl))
	}
}
