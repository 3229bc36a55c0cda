package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
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

// TestValidByOwnClock checks the local validity window with a fake clock: it
// ends at the start of the last confirming round plus LeaseTTL minus the margin.
func TestValidByOwnClock(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	clock := newFakeClock()
	const ttl = 10 * time.Second
	const window = ttl - time.Second // margin: 10% of the TTL
	a := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl, Clock: clock.Now})
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid before any claim")
	}
	if _, err := a.Claim(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	if fence, ok := a.Valid("t1"); !ok || fence != 1 {
		t.Fatalf("Valid right after the claim = %d, %v", fence, ok)
	}
	clock.Advance(window - time.Millisecond)
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid 1ms before the window ends")
	}
	clock.Advance(time.Millisecond)
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid once LeaseTTL minus the margin has passed")
	}
	if held := a.Held(); held["t1"] != 1 {
		t.Errorf("held = %v: an expired window does not drop the lease", held)
	}
	// Redis still has it: a renewal makes it valid again, from its own start.
	if lost, err := a.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew = %v, %v", lost, err)
	}
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid after a successful renewal")
	}
	clock.Advance(window)
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid after the renewed window")
	}
}

// TestValidAfterRenewFails cuts Redis off: Renew fails, and the lease stays
// valid only until its window ends by the local clock.
func TestValidAfterRenewFails(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	clock := newFakeClock()
	const ttl = 3 * time.Second
	const window = ttl - 500*time.Millisecond // margin: at least 500ms
	a := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl, Clock: clock.Now})
	if _, err := a.Claim(ctx, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(ttl / 3)
	b.mini.Close()
	if _, err := a.Renew(ctx); err == nil {
		t.Fatal("renew with Redis down succeeded")
	}
	if a.RenewFailures() != 1 || a.Renewals() != 0 {
		t.Errorf("renewals %d, failures %d; want 0, 1", a.Renewals(), a.RenewFailures())
	}
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid within the window of the last good claim")
	}
	clock.Advance(window - ttl/3)
	if _, ok := a.Valid("t1"); ok {
		t.Fatal("valid past the window while Redis is down")
	}
	// Redis is back, the lease never expired there: renewed and valid again.
	if err := b.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	if lost, err := a.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew after restart = %v, %v", lost, err)
	}
	if _, ok := a.Valid("t1"); !ok {
		t.Fatal("not valid after Redis came back")
	}
}

// TestBatchRoundTrips claims, renews and releases 100,000 trunks in a handful
// of round trips.
func TestBatchRoundTrips(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("100,000 leases")
	}
	b := realBackend(t)
	ctx := t.Context()
	trips := &roundTrips{}
	a := b.cluster(t, "replica-a", cluster.Options{Client: b.client(t, trips)})
	all := refs("trunk", 100_000)
	limit := int64(2 * len(all) / 1000)

	got, err := a.Claim(ctx, all)
	if err != nil || len(got) != len(all) {
		t.Fatalf("claim: %d got, %v", len(got), err)
	}
	t.Logf("claim of %d: %d round trips", len(all), trips.Count())
	if n := trips.Count(); n > limit {
		t.Errorf("claim of %d took %d round trips, want at most %d", len(all), n, limit)
	}

	trips.Reset()
	lost, err := a.Renew(ctx)
	if err != nil || len(lost) != 0 {
		t.Fatalf("renew: lost %d, %v", len(lost), err)
	}
	t.Logf("renew of %d: %d round trips", len(all), trips.Count())
	if n := trips.Count(); n > limit {
		t.Errorf("renew of %d took %d round trips, want at most %d", len(all), n, limit)
	}

	trips.Reset()
	if err := a.Release(ctx, all); err != nil {
		t.Fatal(err)
	}
	t.Logf("release of %d: %d round trips", len(all), trips.Count())
	if n := trips.Count(); n > limit {
		t.Errorf("release of %d took %d round trips, want at most %d", len(all), n, limit)
	}
	if a.HandOvers() != int64(len(all)) {
		t.Errorf("hand-overs %d, want %d", a.HandOvers(), len(all))
	}
}

// evalCounter is a go-redis hook counting EVAL and EVALSHA commands.
type evalCounter struct{ n atomic.Int64 }

func (h *evalCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *evalCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *evalCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func (h *evalCounter) count(cmd redis.Cmder) {
	if n := cmd.Name(); n == "evalsha" || n == "eval" {
		h.n.Add(1)
	}
}

// TestScriptCacheFlushed runs the scripts after the server forgot them.
func TestScriptCacheFlushed(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	a := b.cluster(t, "replica-a", cluster.Options{})
	if _, err := a.Claim(ctx, refs("trunk", 2500)); err != nil {
		t.Fatal(err)
	}
	if err := b.raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if lost, err := a.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("renew after SCRIPT FLUSH = lost %d, %v", len(lost), err)
	}
	if a.Renewals() != 1 {
		t.Errorf("renewals %d, want 1", a.Renewals())
	}
}

// TestConcurrentUse calls everything at once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	ctx := t.Context()
	a := b.cluster(t, "replica-a", cluster.Options{})
	all := refs("trunk", 200)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				part := all[(w*50+i)%150 : (w*50+i)%150+50]
				switch i % 4 {
				case 0:
					if _, err := a.Claim(ctx, part); err != nil {
						t.Error(err)
					}
				case 1:
					if _, err := a.Renew(ctx); err != nil {
						t.Error(err)
					}
				case 2:
					recs := make([]registration.Record, 0, len(part))
					for _, ref := range part {
						fence, _ := a.Valid(ref)
						recs = append(recs, registration.Record{TrunkRef: ref, Fence: fence})
					}
					if _, err := a.FencedPutMany(ctx, "rec:", recs, time.Hour); err != nil {
						t.Error(err)
					}
				case 3:
					if err := a.Release(ctx, part[:10]); err != nil {
						t.Error(err)
					}
					_ = a.Held()
				}
			}
		})
	}
	wg.Wait()
	// Whatever happened, Held and Redis agree.
	for ref, fence := range a.Held() {
		if v := b.raw.Get(ctx, b.leaseKey(ref)).Val(); v != fmt.Sprintf("replica-a:%d", fence) {
			t.Errorf("held %s:%d, Redis has %q", ref, fence, v)
		}
	}
}
