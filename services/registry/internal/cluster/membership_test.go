package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/redistest"
)

// waitMembers waits until c sees exactly the members ids (sorted), woken by
// MembersChanged.
func waitMembers(t *testing.T, c *cluster.Cluster, ids ...string) []cluster.Member {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		members := c.Members()
		got := make([]string, len(members))
		for i, m := range members {
			got[i] = m.ID
		}
		if slices.Equal(got, ids) {
			return members
		}
		select {
		case <-c.MembersChanged():
		case <-deadline.C:
			t.Fatalf("%s sees %v, want %v", c.ID(), got, ids)
		}
	}
}

// runMembership runs c's membership until the test ends.
func runMembership(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestMembership(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		const ttl = time.Second
		ids := []string{"replica-a", "replica-b", "replica-c"}
		cs := make([]*cluster.Cluster, len(ids))
		cancels := make([]context.CancelFunc, len(ids))
		done := make([]chan error, len(ids))
		for i, id := range ids {
			cs[i] = b.cluster(t, id, cluster.Options{LeaseTTL: ttl, Advertise: fmt.Sprintf("10.0.0.%d:51910", i+1)})
			ctx, cancel := context.WithCancel(t.Context())
			cancels[i], done[i] = cancel, make(chan error, 1)
			go func() { done[i] <- cs[i].Run(ctx) }()
		}
		t.Cleanup(func() {
			for i := range cs {
				cancels[i]()
				<-done[i]
			}
		})
		for _, c := range cs {
			members := waitMembers(t, c, ids...)
			for i, m := range members {
				if want := fmt.Sprintf("10.0.0.%d:51910", i+1); m.Advertise != want {
					t.Errorf("%s sees %s at %q, want %q", c.ID(), m.ID, m.Advertise, want)
				}
			}
		}
		for _, ref := range refs("trunk", 100) {
			if a, bo, c := cs[0].Owner(ref), cs[1].Owner(ref), cs[2].Owner(ref); a != bo || a != c || a == "" {
				t.Fatalf("owners of %s disagree: %q %q %q", ref, a, bo, c)
			}
		}

		// replica-c leads discovery, then stops: it leaves the set and the lead.
		if leader, err := cs[2].TryDiscovery(t.Context(), time.Hour); err != nil || !leader {
			t.Fatalf("replica-c discovery = %v, %v", leader, err)
		}
		cancels[2]()
		select {
		case err := <-done[2]:
			done[2] <- err // for the cleanup
			if err != nil {
				t.Fatalf("Run returned %v after its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		if got := cs[2].Members(); len(got) != 0 {
			t.Errorf("replica-c still sees %v after leaving", got)
		}
		// replica-c leaves a tombstone (score: the time it left), so the set holds 2
		// live entries and one already past.
		live := b.raw.ZCount(t.Context(), b.prefix+"members", "("+strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Val()
		if live != 2 {
			t.Errorf("members set holds %d live entries after replica-c left, want 2", live)
		}
		for _, c := range cs[:2] {
			waitMembers(t, c, ids[:2]...)
		}
		if leader, err := cs[0].TryDiscovery(t.Context(), time.Hour); err != nil || !leader {
			t.Errorf("replica-a cannot take the discovery lease replica-c left: %v, %v", leader, err)
		}
	})
}

// TestMembershipExpiry shows a member that stopped without leaving (its
// heartbeats just end) dropped when its expiry passes, long-dead entries
// pruned, and malformed ones ignored.
func TestMembershipExpiry(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		const ttl = time.Second
		key := b.prefix + "members"
		now := time.Now()
		score := func(d time.Duration) float64 { return float64(now.Add(d).UnixMilli()) }
		err := b.raw.ZAdd(t.Context(), key,
			redis.Z{Score: score(2 * time.Second), Member: `{"id":"ghost"}`},
			redis.Z{Score: score(-10 * time.Second), Member: `{"id":"ancient"}`},
			redis.Z{Score: score(time.Hour), Member: `not json`},
		).Err()
		if err != nil {
			t.Fatal(err)
		}
		c := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl})
		runMembership(t, c)
		waitMembers(t, c, "ghost", "replica-a")
		if _, err := b.raw.ZScore(t.Context(), key, `{"id":"ancient"}`).Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("an entry dead for 10 LeaseTTL was not pruned (%v)", err)
		}
		waitMembers(t, c, "replica-a")
		if got := c.Owner("t1"); got != "replica-a" {
			t.Errorf("Owner with one member = %q", got)
		}
	})
}

// TestMembershipExpiryBetweenHeartbeats: a member whose heartbeats stopped leaves the
// view when its expiry passes, without waiting for this replica's next heartbeat.
func TestMembershipExpiryBetweenHeartbeats(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		const ttl = 30 * time.Second // heartbeats every 10 s
		err := b.raw.ZAdd(t.Context(), b.prefix+"members",
			redis.Z{Score: float64(time.Now().Add(time.Second).UnixMilli()), Member: `{"id":"dying"}`}).Err()
		if err != nil {
			t.Fatal(err)
		}
		trips := &roundTrips{}
		c := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: ttl, Client: b.client(t, trips)})
		runMembership(t, c)
		waitMembers(t, c, "dying", "replica-a")
		waitMembers(t, c, "replica-a")
		if n := trips.Count(); n != 1 {
			t.Errorf("%d round trips when the dead member left the view, want 1 (the first heartbeat only)", n)
		}
	})
}

func TestMembershipRedisDown(t *testing.T) {
	t.Parallel()
	b := miniBackend(t)
	clock := newFakeClock()
	// Scores come from the fake clock, heartbeats from the real one.
	c := b.cluster(t, "replica-a", cluster.Options{LeaseTTL: time.Second, Clock: clock.Now})
	runMembership(t, c)
	waitMembers(t, c, "replica-a")
	b.mini.Close()
	// Without Redis the view keeps the last answer until its expiry passes.
	clock.Advance(time.Second)
	waitMembers(t, c)
	if got := c.Owner("t1"); got != "" {
		t.Errorf("Owner with no live member = %q", got)
	}
	if err := b.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, "replica-a")
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		const ttl = 2 * time.Second
		cs := []*cluster.Cluster{
			b.cluster(t, "replica-a", cluster.Options{}),
			b.cluster(t, "replica-b", cluster.Options{}),
			b.cluster(t, "replica-c", cluster.Options{}),
		}
		results := make(chan int, len(cs))
		for i, c := range cs {
			go func() {
				leader, err := c.TryDiscovery(ctx, ttl)
				if err != nil {
					t.Error(err)
				}
				if leader {
					results <- i
				} else {
					results <- -1
				}
			}()
		}
		leader := -1
		for range cs {
			if i := <-results; i >= 0 {
				if leader >= 0 {
					t.Fatalf("two leaders: %d and %d", leader, i)
				}
				leader = i
			}
		}
		if leader < 0 {
			t.Fatal("no leader")
		}
		// The leader renews; the others still cannot take it.
		for i, c := range cs {
			got, err := c.TryDiscovery(ctx, ttl)
			if err != nil || got != (i == leader) {
				t.Errorf("%s: leader %v, %v; want %v", c.ID(), got, err, i == leader)
			}
		}
		// The leader stops renewing: another takes over once the lease ran out.
		if b.mini != nil {
			b.mini.FastForward(ttl)
		}
		next := -1
		redistest.Poll(t, 10*time.Second, func() error {
			for i, c := range cs {
				if i == leader {
					continue
				}
				got, err := c.TryDiscovery(ctx, ttl)
				if err != nil {
					t.Fatal(err)
				}
				if got {
					next = i
					return nil
				}
			}
			return errors.New("no new leader yet")
		})
		if got, err := cs[leader].TryDiscovery(ctx, ttl); err != nil || got {
			t.Errorf("old leader still leads: %v, %v", got, err)
		}
		if err := cs[next].ReleaseDiscovery(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := cs[leader].TryDiscovery(ctx, ttl); err != nil || !got {
			t.Errorf("lease not free after ReleaseDiscovery: %v, %v", got, err)
		}
		if _, err := cs[0].TryDiscovery(ctx, 0); err == nil {
			t.Error("TryDiscovery with ttl 0 succeeded")
		}
	})
}

func TestDesired(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		trips := &roundTrips{}
		a := b.cluster(t, "replica-a", cluster.Options{Client: b.client(t, trips)})
		follower := b.cluster(t, "replica-b", cluster.Options{})

		if blob, version, changed, err := follower.FetchDesired(ctx, ""); err != nil || blob != nil || version != "" || changed {
			t.Fatalf("fetch before any publish = %q, %q, %v, %v", blob, version, changed, err)
		}
		if blob, version, changed, err := follower.FetchDesired(ctx, "stale"); err != nil || blob != nil || version != "" || changed {
			t.Fatalf("fetch of a vanished set = %q, %q, %v, %v; want nothing, unchanged", blob, version, changed, err)
		}
		if err := a.PublishDesired(ctx, []byte("set 1")); !errors.Is(err, cluster.ErrNotLeader) {
			t.Fatalf("publish without the discovery lease = %v, want ErrNotLeader", err)
		}
		if leader, err := a.TryDiscovery(ctx, time.Hour); err != nil || !leader {
			t.Fatalf("discovery = %v, %v", leader, err)
		}
		blob1 := []byte("set 1")
		if err := a.PublishDesired(ctx, blob1); err != nil {
			t.Fatal(err)
		}
		blob, v1, changed, err := follower.FetchDesired(ctx, "")
		if err != nil || string(blob) != "set 1" || !changed || v1 != cluster.DesiredVersion(blob1) {
			t.Fatalf("fetch = %q, %q, %v, %v", blob, v1, changed, err)
		}
		if len(v1) != 64 {
			t.Errorf("version %q is not a hex SHA-256", v1)
		}
		blob, version, changed, err := follower.FetchDesired(ctx, v1)
		if err != nil || blob != nil || version != v1 || changed {
			t.Fatalf("fetch with the current version = %q, %q, %v, %v", blob, version, changed, err)
		}

		// The same set again: one round trip, nothing written.
		trips.Reset()
		if err := a.PublishDesired(ctx, []byte("set 1")); err != nil {
			t.Fatal(err)
		}
		if n := trips.Count(); n != 1 {
			t.Errorf("publishing an unchanged set took %d round trips, want 1", n)
		}

		blob2 := make([]byte, 1<<20)
		for i := range blob2 {
			blob2[i] = byte(i)
		}
		if err := a.PublishDesired(ctx, blob2); err != nil {
			t.Fatal(err)
		}
		blob, v2, changed, err := follower.FetchDesired(ctx, v1)
		if err != nil || !slices.Equal(blob, blob2) || !changed || v2 != cluster.DesiredVersion(blob2) {
			t.Fatalf("fetch after a change = %d bytes, %q, %v, %v", len(blob), v2, changed, err)
		}

		// Leadership passes on: the old leader can no longer publish.
		if err := a.ReleaseDiscovery(ctx); err != nil {
			t.Fatal(err)
		}
		if leader, err := follower.TryDiscovery(ctx, time.Hour); err != nil || !leader {
			t.Fatalf("follower discovery = %v, %v", leader, err)
		}
		if err := a.PublishDesired(ctx, []byte("set 3 by A")); !errors.Is(err, cluster.ErrNotLeader) {
			t.Errorf("publish by the old leader = %v, want ErrNotLeader", err)
		}
		if err := follower.PublishDesired(ctx, []byte("set 3")); err != nil {
			t.Fatal(err)
		}
		if blob, _, changed, err := a.FetchDesired(ctx, v2); err != nil || string(blob) != "set 3" || !changed {
			t.Errorf("fetch of the new leader's set = %q, %v, %v", blob, changed, err)
		}
		if got := b.raw.HGet(ctx, b.prefix+"{leases}:desired", "version").Val(); got != cluster.DesiredVersion([]byte("set 3")) {
			t.Errorf("stored version %q", got)
		}
	})
}
