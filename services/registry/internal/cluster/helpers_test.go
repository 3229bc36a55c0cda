package cluster_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/store"
)

// backend is a Redis server the cluster is tested against.
type backend struct {
	name string
	addr string
	// prefix is unique to the test on a shared server.
	prefix string
	// raw is a plain client for looking behind the cluster.
	raw *redis.Client
	// mini is the miniredis server, nil for the real Redis.
	mini *miniredis.Miniredis
}

// client returns a new client on the backend, closed when the test ends.
func (b backend) client(t *testing.T, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: b.addr, DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ContextTimeoutEnabled: true, MaxRetries: 1, DialerRetries: 1,
	})
	for _, h := range hooks {
		c.AddHook(h)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cluster returns a Cluster named id on the backend with o (Client and Prefix
// filled in when empty).
func (b backend) cluster(t *testing.T, id string, o cluster.Options) *cluster.Cluster {
	t.Helper()
	if o.Client == nil {
		o.Client = b.client(t)
	}
	if o.Prefix == "" {
		o.Prefix = b.prefix
	}
	o.ReplicaID = id
	return cluster.New(o)
}

// leaseKey is the documented key of ref's lease under a prefix without a hash tag.
func (b backend) leaseKey(ref string) string { return b.prefix + "{leases}:lease:" + ref }

// backendOn is the cluster's backend on s: its own prefix on the real Redis,
// "sipreg:" on a miniredis.
func backendOn(s redistest.Server) backend {
	b := backend{name: s.Name, addr: s.Addr, prefix: s.Prefix, raw: s.Client, mini: s.Mini}
	if b.prefix == "" {
		b.prefix = "sipreg:"
	}
	return b
}

// realBackend is the real Redis under a prefix of the test's own; every key
// under it is deleted when the test ends.
func realBackend(t *testing.T) backend { return backendOn(redistest.Real(t)) }

// miniBackend starts a miniredis for the test.
func miniBackend(t *testing.T) backend { return backendOn(redistest.Mini(t)) }

// forEachBackend runs f on the real Redis and on miniredis; only the first is
// skipped when the real Redis is unreachable outside CI.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	redistest.Each(t, func(t *testing.T, s redistest.Server) { f(t, backendOn(s)) })
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// roundTrips counts what a client sends (the store's hook).
type roundTrips = store.RoundTripCounter

// refs returns n trunk refs named prefix-0 … prefix-(n-1).
func refs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}
