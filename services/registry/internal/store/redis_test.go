package store_test

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/redistest"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/store/storetest"
)

// backend is a Redis server the Redis store is tested against.
type backend struct {
	// open returns a store on the server with opts (Addrs filled in; Prefix
	// made unique on a shared server) and the key prefix it uses.
	open func(t *testing.T, opts store.RedisOptions) (s *store.Redis, prefix string)
	// raw is a plain client on the same server, for looking behind the store.
	raw func(t *testing.T) *redis.Client
}

// backendOn is the store's backend on s: on the real Redis every store of a
// test gets a key prefix under the test's own prefix.
func backendOn(s redistest.Server) backend {
	return backend{
		open: func(t *testing.T, opts store.RedisOptions) (*store.Redis, string) {
			opts.Addrs = []string{s.Addr}
			opts.Prefix = s.Prefix + opts.Prefix
			if opts.Prefix == "" {
				opts.Prefix = store.DefaultPrefix
			}
			return openStore(t, opts), opts.Prefix
		},
		raw: func(*testing.T) *redis.Client { return s.Client },
	}
}

// realBackend shares the real Redis with other runs (see redistest.Real).
func realBackend(t *testing.T) backend { return backendOn(redistest.Real(t)) }

// miniBackend starts a miniredis for the test t.
func miniBackend(t *testing.T) (backend, *miniredis.Miniredis) {
	s := redistest.Mini(t)
	return backendOn(s), s.Mini
}

// forEachBackend runs f as a subtest on the real Redis and on miniredis; only
// the first is skipped when the real Redis is unreachable outside CI.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	redistest.Each(t, func(t *testing.T, s redistest.Server) { f(t, backendOn(s)) })
}

func openStore(t *testing.T, opts store.RedisOptions) *store.Redis {
	t.Helper()
	s, err := store.NewRedis(opts)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRedisContract(t *testing.T) {
	b := realBackend(t)
	storetest.RunContract(t, func(t *testing.T) store.Store {
		s, _ := b.open(t, store.RedisOptions{Prefix: rand.Text() + ":"})
		return s
	})
}

func TestMiniredisContract(t *testing.T) {
	storetest.RunContract(t, func(t *testing.T) store.Store {
		b, _ := miniBackend(t)
		s, _ := b.open(t, store.RedisOptions{})
		return s
	})
}

// TestMiniredisClusterContract runs the contract through a Cluster client
// (several seed addresses) against miniredis's one-node cluster: it covers the
// Cluster code path (SCAN on each master, pipelines split by node), not a
// cluster of several nodes.
func TestMiniredisClusterContract(t *testing.T) {
	storetest.RunContract(t, func(t *testing.T) store.Store {
		addr := redistest.Mini(t).Addr
		return openStore(t, store.RedisOptions{Addrs: []string{addr, addr}})
	})
}

// fixedClock is the injected clock of the TTL tests.
var fixedClock = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestRedisTTL(t *testing.T) {
	const grace = 24 * time.Hour
	now := fixedClock
	past, future := now.Add(-time.Hour), now.Add(90*time.Minute)
	tests := []struct {
		name                    string
		expiresAt, nextActionAt time.Time
		want                    time.Duration
	}{
		{"no times", time.Time{}, time.Time{}, grace},
		{"both past", past, past.Add(time.Minute), grace},
		{"expiry later", future, now.Add(time.Minute), 90*time.Minute + grace},
		{"next action later", now.Add(time.Minute), future, 90*time.Minute + grace},
		{"next action only", time.Time{}, future, 90*time.Minute + grace},
		{"sub-millisecond rounds up", now.Add(1500 * time.Microsecond), time.Time{}, 2*time.Millisecond + grace},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		s, prefix := b.open(t, store.RedisOptions{TTLGrace: grace, Now: func() time.Time { return now }})
		raw := b.raw(t)
		check := func(t *testing.T, ref string, want time.Duration) {
			t.Helper()
			got, err := raw.PTTL(t.Context(), prefix+ref).Result()
			if err != nil {
				t.Fatalf("PTTL: %v", err)
			}
			// A real Redis counts down between the write and the PTTL.
			if got > want || got < want-5*time.Second {
				t.Errorf("TTL of %s = %v, want %v", ref, got, want)
			}
		}
		var many []registration.Record
		for i, tc := range tests {
			rec := storetest.Record(fmt.Sprintf("trunk-%d", i))
			rec.ExpiresAt, rec.NextActionAt = tc.expiresAt, tc.nextActionAt
			if err := s.Put(t.Context(), rec); err != nil {
				t.Fatalf("Put: %v", err)
			}
			rec.TrunkRef = fmt.Sprintf("trunk-many-%d", i)
			many = append(many, rec)
		}
		if _, err := s.PutMany(t.Context(), many); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				check(t, fmt.Sprintf("trunk-%d", i), tc.want)
				check(t, fmt.Sprintf("trunk-many-%d", i), tc.want)
			})
		}
	})
}

// TestRedisEntryExpires waits on a real Redis for a record with a short TTL to go.
func TestRedisEntryExpires(t *testing.T) {
	b := realBackend(t)
	s, _ := b.open(t, store.RedisOptions{TTLGrace: 300 * time.Millisecond})
	rec := storetest.Record("trunk-1")
	rec.ExpiresAt, rec.NextActionAt = time.Time{}, time.Time{}
	if err := s.Put(t.Context(), rec); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.Get(t.Context(), "trunk-1"); err != nil {
		t.Fatalf("Get right after Put: %v", err)
	}
	redistest.Poll(t, 10*time.Second, func() error {
		_, err := s.Get(t.Context(), "trunk-1")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
	recs, err := s.List(t.Context())
	if err != nil || len(recs) != 0 {
		t.Errorf("List after expiry = %d records, %v; want none", len(recs), err)
	}
}

// TestMiniredisEntryExpires moves miniredis's clock past a record's TTL.
func TestMiniredisEntryExpires(t *testing.T) {
	const grace = time.Hour
	b, m := miniBackend(t)
	s, _ := b.open(t, store.RedisOptions{TTLGrace: grace, Now: func() time.Time { return fixedClock }})
	rec := storetest.Record("trunk-1")
	rec.ExpiresAt, rec.NextActionAt = fixedClock.Add(30*time.Minute), fixedClock.Add(20*time.Minute)
	if err := s.Put(t.Context(), rec); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.PutMany(t.Context(), []registration.Record{storetest.Record("trunk-2")}); err != nil {
		t.Fatalf("PutMany: %v", err)
	}
	m.FastForward(30*time.Minute + grace - time.Millisecond)
	if _, err := s.Get(t.Context(), "trunk-1"); err != nil {
		t.Fatalf("Get 1ms before the TTL ends: %v", err)
	}
	m.FastForward(time.Millisecond)
	for _, ref := range []string{"trunk-1", "trunk-2"} {
		if _, err := s.Get(t.Context(), ref); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) after the TTL: %v, want ErrNotFound", ref, err)
		}
	}
	if recs, err := s.List(t.Context()); err != nil || len(recs) != 0 {
		t.Errorf("List after the TTL = %d records, %v; want none", len(recs), err)
	}
}

func TestRedisRoundTrips(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		// A fresh store: its first command opens the connection, whose
		// handshake is not counted.
		s, _ := b.open(t, store.RedisOptions{})
		step := func(name string, max int64, op func() error) {
			t.Helper()
			before := s.RoundTrips()
			if err := op(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := s.RoundTrips() - before; got > max || (max > 0 && got == 0) {
				t.Errorf("%s took %d round trips, want at most %d", name, got, max)
			}
		}
		ctx := t.Context()
		step("first Put", 1, func() error { return s.Put(ctx, storetest.Record("trunk-1")) })
		step("Put", 1, func() error { return s.Put(ctx, storetest.Record("trunk-2")) })
		step("Get", 1, func() error { _, err := s.Get(ctx, "trunk-1"); return err })
		step("Delete", 1, func() error { return s.Delete(ctx, "trunk-2") })
		step("Ping", 1, func() error { return s.Ping(ctx) })
		step("PutMany(none)", 0, func() error { _, err := s.PutMany(ctx, nil); return err })
		recs := make([]registration.Record, 2500)
		for i := range recs {
			recs[i] = storetest.Record(fmt.Sprintf("trunk-%04d", i))
		}
		step("PutMany(2500)", 3, func() error { _, err := s.PutMany(ctx, recs); return err })
		// The GETs of 2500 keys take 3 pipelines; SCAN steps depend on the
		// rest of the server's keys.
		before := s.RoundTrips()
		got, err := s.List(ctx)
		if err != nil || len(got) != 2501 {
			t.Fatalf("List = %d records, %v", len(got), err)
		}
		if n := s.RoundTrips() - before; n < 4 {
			t.Errorf("List took %d round trips: at least one SCAN and 3 pipelines expected", n)
		}
	})
}

func TestRedisCorruptValue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, prefix := b.open(t, store.RedisOptions{})
		raw := b.raw(t)
		ctx := t.Context()
		if _, err := s.PutMany(ctx, []registration.Record{storetest.Record("trunk-1"), storetest.Record("trunk-2")}); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		other, err := json.Marshal(storetest.Record("trunk-elsewhere"))
		if err != nil {
			t.Fatal(err)
		}
		for key, value := range map[string]any{
			prefix + "trunk-garbage":  "{not json",
			prefix + "trunk-null":     "null",
			prefix + "trunk-mismatch": other,
		} {
			if err := raw.Set(ctx, key, value, time.Minute).Err(); err != nil {
				t.Fatalf("raw SET: %v", err)
			}
		}
		for _, ref := range []string{"trunk-garbage", "trunk-null", "trunk-mismatch"} {
			_, err := s.Get(ctx, ref)
			if !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s) = %v; want ErrCorrupt", ref, err)
			} else if !strings.Contains(err.Error(), "redis get "+ref+":") {
				t.Errorf("Get(%s) error %q does not name the operation and the trunk", ref, err)
			}
		}
		recs, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List with corrupt values: %v", err)
		}
		var refs []string
		for _, rec := range recs {
			refs = append(refs, rec.TrunkRef)
		}
		if len(recs) != 2 {
			t.Errorf("List = %v; want the 2 good records only", refs)
		}
		// Put repairs a corrupt entry.
		if err := s.Put(ctx, storetest.Record("trunk-garbage")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if _, err := s.Get(ctx, "trunk-garbage"); err != nil {
			t.Errorf("Get after repair: %v", err)
		}
	})
}

// TestRedisPrefixIsolation checks stores whose prefixes SCAN MATCH would mix up
// if glob characters were not quoted.
func TestRedisPrefixIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		prefixes := []string{"x[1]:", "x1:", "x*:", "x?:", `x\:`, "x"}
		stores := make([]*store.Redis, len(prefixes))
		for i, p := range prefixes {
			stores[i], _ = b.open(t, store.RedisOptions{Prefix: p})
			if err := stores[i].Put(t.Context(), storetest.Record(fmt.Sprintf("trunk-%d", i))); err != nil {
				t.Fatalf("Put under %q: %v", p, err)
			}
		}
		for i, s := range stores {
			recs, err := s.List(t.Context())
			if err != nil {
				t.Fatalf("List under %q: %v", prefixes[i], err)
			}
			// "x" is a prefix of every other key: their values name trunks
			// that do not match their keys under "x", so they are skipped.
			if want := fmt.Sprintf("trunk-%d", i); len(recs) != 1 || recs[0].TrunkRef != want {
				t.Errorf("List under %q = %+v; want %s only", prefixes[i], recs, want)
			}
		}
	})
}
