package cluster_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/cluster"
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

// realRedis returns the address of the real Redis (REDIS_ADDR, else
// 127.0.0.1:6379). When it cannot be reached the test fails in CI (CI=true) and
// is skipped elsewhere.
func realRedis(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, DialerRetries: 1, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("real Redis at %s unreachable (CI=true): %v", addr, err)
		}
		t.Skipf("real Redis at %s unreachable: %v", addr, err)
	}
	return addr
}

// realBackend is the real Redis under a prefix of the test's own; every key
// under it is deleted when the test ends.
func realBackend(t *testing.T) backend {
	t.Helper()
	addr := realRedis(t)
	raw := redis.NewClient(&redis.Options{Addr: addr})
	prefix := "sipreg-test:" + rand.Text() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := raw.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup scan %s*: %v", prefix, err)
		}
		for chunk := range slices.Chunk(keys, 1000) {
			if err := raw.Del(ctx, chunk...).Err(); err != nil {
				t.Errorf("cleanup del: %v", err)
			}
		}
		raw.Close()
	})
	return backend{name: "real", addr: addr, prefix: prefix, raw: raw}
}

// miniBackend starts a miniredis for the test.
func miniBackend(t *testing.T) backend {
	t.Helper()
	m := miniredis.RunT(t)
	raw := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { raw.Close() })
	return backend{name: "miniredis", addr: m.Addr(), prefix: "sipreg:", raw: raw, mini: m}
}

// forEachBackend runs f on the real Redis and on miniredis; only the first is
// skipped when the real Redis is unreachable outside CI.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Run("real", func(t *testing.T) { f(t, realBackend(t)) })
	t.Run("miniredis", func(t *testing.T) { f(t, miniBackend(t)) })
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

// poll calls f until it returns nil, failing the test at the deadline.
func poll(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", limit, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended: %v", err)
		case <-tick.C:
		}
	}
}
