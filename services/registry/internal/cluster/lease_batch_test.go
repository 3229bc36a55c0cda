package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
)

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
