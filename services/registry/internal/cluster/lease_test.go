package cluster_test

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/redistest"
)

func TestClaimRenewRelease(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		a := b.cluster(t, "replica-a", cluster.Options{})
		bb := b.cluster(t, "replica-b", cluster.Options{})

		got, err := a.Claim(ctx, []string{"t1", "t2", "t1"})
		if err != nil {
			t.Fatalf("A claim: %v", err)
		}
		if want := map[string]int64{"t1": 1, "t2": 1}; !maps.Equal(got, want) {
			t.Fatalf("A claim = %v, want %v", got, want)
		}
		if v := b.raw.Get(ctx, b.leaseKey("t1")).Val(); v != "replica-a:1" {
			t.Errorf("lease value of t1 = %q, want replica-a:1", v)
		}
		if ttl := b.raw.PTTL(ctx, b.leaseKey("t1")).Val(); ttl <= 0 || ttl > cluster.DefaultLeaseTTL {
			t.Errorf("lease TTL of t1 = %v, want (0, %v]", ttl, cluster.DefaultLeaseTTL)
		}

		// B cannot take a held lease; it gets the free one.
		got, err = bb.Claim(ctx, []string{"t1", "t3"})
		if err != nil {
			t.Fatalf("B claim: %v", err)
		}
		if want := map[string]int64{"t3": 1}; !maps.Equal(got, want) {
			t.Fatalf("B claim = %v, want %v", got, want)
		}
		if _, ok := bb.Valid("t1"); ok {
			t.Error("B is valid for A's t1")
		}

		// Claiming one's own lease again keeps its fence.
		got, err = a.Claim(ctx, []string{"t1"})
		if err != nil || !maps.Equal(got, map[string]int64{"t1": 1}) {
			t.Fatalf("A re-claim = %v, %v; want t1:1", got, err)
		}

		lost, err := a.Renew(ctx)
		if err != nil || len(lost) != 0 {
			t.Fatalf("A renew = lost %v, %v", lost, err)
		}
		if a.Renewals() != 1 || a.RenewFailures() != 0 {
			t.Errorf("A renewals %d, failures %d; want 1, 0", a.Renewals(), a.RenewFailures())
		}

		// A hands t1 over: B claims it with the next fence.
		if err := a.Release(ctx, []string{"t1"}); err != nil {
			t.Fatalf("A release: %v", err)
		}
		if a.HandOvers() != 1 {
			t.Errorf("A hand-overs = %d, want 1", a.HandOvers())
		}
		if _, ok := a.Valid("t1"); ok {
			t.Error("A still valid for t1 after releasing it")
		}
		if held := a.Held(); !maps.Equal(held, map[string]int64{"t2": 1}) {
			t.Errorf("A held = %v, want t2:1", held)
		}
		// Releasing another's lease deletes nothing.
		if err := a.Release(ctx, []string{"t3"}); err != nil {
			t.Fatalf("A release of B's t3: %v", err)
		}
		if v := b.raw.Get(ctx, b.leaseKey("t3")).Val(); v != "replica-b:1" || a.HandOvers() != 1 {
			t.Errorf("after A released B's t3: lease %q, A hand-overs %d", v, a.HandOvers())
		}

		got, err = bb.Claim(ctx, []string{"t1"})
		if err != nil || !maps.Equal(got, map[string]int64{"t1": 2}) {
			t.Fatalf("B claim after release = %v, %v; want t1:2", got, err)
		}
		if bb.Takeovers() != 1 {
			t.Errorf("B takeovers = %d, want 1", bb.Takeovers())
		}
		if fence, ok := bb.Valid("t1"); !ok || fence != 2 {
			t.Errorf("B Valid(t1) = %d, %v; want 2, true", fence, ok)
		}

		// Back to A: one more owner change, one more fence.
		if err := bb.Release(ctx, []string{"t1"}); err != nil {
			t.Fatalf("B release: %v", err)
		}
		got, err = a.Claim(ctx, []string{"t1"})
		if err != nil || !maps.Equal(got, map[string]int64{"t1": 3}) {
			t.Fatalf("A claim back = %v, %v; want t1:3", got, err)
		}
		if a.Takeovers() != 1 {
			t.Errorf("A takeovers = %d, want 1", a.Takeovers())
		}
	})
}

// TestClaimAfterExpiry lets a lease expire in miniredis: it is free, the next
// owner gets the next fence, and the old owner's Renew reports it lost.
func TestClaimAfterExpiry(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	const ttl = 5 * time.Second
	a := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl})
	bb := b.cluster(t, "replica-b", cluster.Options{LeaseTTL: ttl})
	if got, err := a.Claim(ctx, []string{"t1", "t2"}); err != nil || len(got) != 2 {
		t.Fatalf("A claim = %v, %v", got, err)
	}
	b.mini.FastForward(ttl - time.Millisecond)
	if got, err := bb.Claim(ctx, []string{"t1"}); err != nil || len(got) != 0 {
		t.Fatalf("B claim 1ms before expiry = %v, %v; want nothing", got, err)
	}
	// A renews t2 only... by claiming it; t1 runs out.
	if _, err := a.Claim(ctx, []string{"t2"}); err != nil {
		t.Fatal(err)
	}
	b.mini.FastForward(time.Millisecond)
	got, err := bb.Claim(ctx, []string{"t1", "t2"})
	if err != nil || !maps.Equal(got, map[string]int64{"t1": 2}) {
		t.Fatalf("B claim after expiry = %v, %v; want t1:2", got, err)
	}
	if bb.Takeovers() != 1 {
		t.Errorf("B takeovers = %d, want 1", bb.Takeovers())
	}
	lost, err := a.Renew(ctx)
	if err != nil || !slices.Equal(lost, []string{"t1"}) {
		t.Fatalf("A renew = lost %v, %v; want [t1]", lost, err)
	}
	if held := a.Held(); !maps.Equal(held, map[string]int64{"t2": 1}) {
		t.Errorf("A held = %v, want t2:1", held)
	}
	if a.LeasesLost() != 1 {
		t.Errorf("A leases lost = %d, want 1", a.LeasesLost())
	}
}

// TestClaimAfterExpiryReal waits for a short lease to expire in a real Redis.
func TestClaimAfterExpiryReal(t *testing.T) {
	t.Parallel()
	b := realBackend(t)
	ctx := t.Context()
	const ttl = 300 * time.Millisecond
	a := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl})
	bb := b.cluster(t, "replica-b", cluster.Options{LeaseTTL: ttl})
	if got, err := a.Claim(ctx, []string{"t1"}); err != nil || got["t1"] != 1 {
		t.Fatalf("A claim = %v, %v", got, err)
	}
	var got map[string]int64
	redistest.Poll(t, 10*time.Second, func() error {
		var err error
		got, err = bb.Claim(ctx, []string{"t1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return errors.New("B has not got t1")
		}
		return nil
	})
	if got["t1"] != 2 {
		t.Errorf("B fence = %d, want 2", got["t1"])
	}
	if lost, err := a.Renew(ctx); err != nil || !slices.Equal(lost, []string{"t1"}) {
		t.Errorf("A renew = lost %v, %v; want [t1]", lost, err)
	}
}

// TestConcurrentClaimsDisjoint races two replicas for the same trunks: each
// trunk goes to exactly one.
func TestConcurrentClaimsDisjoint(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		all := refs("trunk", 3000)
		cs := []*cluster.Cluster{
			b.cluster(t, "replica-a", cluster.Options{}),
			b.cluster(t, "replica-b", cluster.Options{}),
			b.cluster(t, "replica-c", cluster.Options{}),
		}
		gots := make([]map[string]int64, len(cs))
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Go(func() {
				// Each asks in its own order, so that the scripts interleave.
				mine := slices.Clone(all)
				if i%2 == 1 {
					slices.Reverse(mine)
				}
				got, err := c.Claim(t.Context(), mine)
				if err != nil {
					t.Errorf("claim: %v", err)
				}
				gots[i] = got
			})
		}
		wg.Wait()
		owner := make(map[string]int)
		for i, got := range gots {
			for ref, fence := range got {
				if prev, dup := owner[ref]; dup {
					t.Fatalf("%s claimed by %d and %d", ref, prev, i)
				}
				if fence != 1 {
					t.Errorf("%s fence %d, want 1", ref, fence)
				}
				owner[ref] = i
			}
		}
		if len(owner) != len(all) {
			t.Errorf("%d of %d trunks claimed", len(owner), len(all))
		}
	})
}

// TestClaimNextSaysWhenLeasesFree: a claim that finds leases another replica holds
// says how long the last of them has left, so that a takeover can ask again right
// when they have all run out; a lease with no expiry, or none held by another, says
// nothing.
func TestClaimNextSaysWhenLeasesFree(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		a := b.cluster(t, "replica-a", cluster.Options{})
		bb := b.cluster(t, "replica-b", cluster.Options{})
		if _, err := a.Claim(ctx, []string{"t1", "t2", "t4"}); err != nil {
			t.Fatalf("A claim: %v", err)
		}
		for ref, left := range map[string]time.Duration{"t1": 2 * time.Second, "t2": 3 * time.Second} {
			if err := b.raw.PExpire(ctx, b.leaseKey(ref), left).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.raw.Persist(ctx, b.leaseKey("t4")).Err(); err != nil {
			t.Fatal(err)
		}
		got, freeIn, err := bb.ClaimNext(ctx, []string{"t1", "t2", "t3", "t4"})
		if err != nil || !maps.Equal(got, map[string]int64{"t3": 1}) {
			t.Fatalf("B claim = %v, %v; want t3:1", got, err)
		}
		if freeIn <= 2*time.Second || freeIn > 3*time.Second {
			t.Errorf("B claim: last lease free in %v, want t2's (2s, 3s]", freeIn)
		}
		if got, freeIn, err := bb.ClaimNext(ctx, []string{"t3", "t4"}); err != nil || len(got) != 1 || freeIn != 0 {
			t.Errorf("B claim of its own and of a lease without expiry = %v, free in %v, %v; want t3, 0", got, freeIn, err)
		}
	})
}
