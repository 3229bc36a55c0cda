// Package redistest gives tests a Redis: a miniredis of their own, or the real
// Redis under a key prefix of their own. It is imported only by tests.
package redistest

import (
	"context"
	"crypto/rand"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is a Redis server a test runs against.
type Server struct {
	// Name is "real" or "miniredis".
	Name string
	// Addr is the server's host:port.
	Addr string
	// Prefix is a key prefix of the test's own on the shared real Redis
	// (every key under it is deleted when the test ends); empty on a
	// miniredis, which the test has to itself.
	Prefix string
	// Client is a plain client on the server, closed when the test ends.
	Client *redis.Client
	// Mini is the miniredis, nil for the real Redis.
	Mini *miniredis.Miniredis
}

// Addr returns the address of the real Redis (REDIS_ADDR, else
// 127.0.0.1:6379). When it does not answer a PING the test fails in CI
// (CI=true) and is skipped elsewhere.
func Addr(t testing.TB) string {
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

// Real returns the real Redis (see Addr) under a prefix of the test's own,
// "sipreg-test:<random>:"; every key under it is deleted when the test ends,
// after the cleanups registered later (stores and clients the test opens on
// it) have run.
func Real(t testing.TB) Server {
	t.Helper()
	addr := Addr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	prefix := "sipreg-test:" + rand.Text() + ":"
	t.Cleanup(func() {
		// t.Context is done by now.
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup scan %s*: %v", prefix, err)
		}
		for chunk := range slices.Chunk(keys, 1000) {
			if err := c.Del(ctx, chunk...).Err(); err != nil {
				t.Errorf("cleanup del: %v", err)
			}
		}
		c.Close()
	})
	return Server{Name: "real", Addr: addr, Prefix: prefix, Client: c}
}

// Mini starts a miniredis for the test; it and its client are closed when the
// test ends.
func Mini(t testing.TB) Server {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return Server{Name: "miniredis", Addr: m.Addr(), Client: c, Mini: m}
}

// Each runs f as a subtest on the real Redis and as one on a miniredis; only
// the first is skipped when the real Redis is unreachable outside CI.
func Each(t *testing.T, f func(t *testing.T, s Server)) {
	t.Helper()
	t.Run("real", func(t *testing.T) { f(t, Real(t)) })
	t.Run("miniredis", func(t *testing.T) { f(t, Mini(t)) })
}

// Poll calls f until it returns nil, failing the test if it has not within limit
// (for state another process or a server changes: a Redis restart, a lease expiring).
func Poll(t *testing.T, limit time.Duration, f func() error) {
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

// AwkwardValues returns values whose bytes a careless framing would trip on (NUL,
// separators, quotes, invalid UTF-8, what looks like a length or a record), for the
// tests of what carries stored values as they are: the change feed's frames and the
// fenced write script. A new slice each time: callers may append to it.
func AwkwardValues() []string {
	return []string{
		"",
		":",
		`"`,
		`\`,
		"\x00",
		"\x00\x00:12:\x00",
		"\xff\xfe\x80",
		"\x02\x0a\x05trunk",
		`{"v":1,"trunkRef":"t"}`,
		"]}",
		"P3:abc",
		"10:",
		"é€",
	}
}
