package reconcile

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/store/storetest"
	"sipreg.dev/services/registry/internal/trunk"
)

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

func (c *claimCoord) ClaimNext(ctx context.Context, refs []string) (map[string]int64, time.Duration, error) {
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
	return got, 0, nil
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
		runBackground(t, r)

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
