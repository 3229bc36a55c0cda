package store

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sipreg.dev/services/registry/internal/registration"
)

func TestRedisOptionsDefaults(t *testing.T) {
	got, err := RedisOptions{Addrs: []string{"redis:6379"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Prefix != DefaultPrefix || got.DialTimeout != 2*time.Second || got.ReadTimeout != time.Second ||
		got.WriteTimeout != time.Second || got.TTLGrace != 24*time.Hour || got.Now == nil {
		t.Errorf("defaults: %+v", got)
	}
	u := got.universal()
	if u.DialTimeout != 2*time.Second || u.ReadTimeout != time.Second || u.WriteTimeout != time.Second ||
		!u.ContextTimeoutEnabled || u.TLSConfig != nil || u.MasterName != "" {
		t.Errorf("universal options: %+v", u)
	}
}

func TestRedisOptionsInvalid(t *testing.T) {
	for _, opts := range []RedisOptions{
		{},
		{Addrs: []string{""}},
		{Addrs: []string{"redis:6379"}, DialTimeout: -time.Second},
		{Addrs: []string{"redis:6379"}, ReadTimeout: -1},
		{Addrs: []string{"redis:6379"}, WriteTimeout: -1},
		{Addrs: []string{"redis:6379"}, TTLGrace: -time.Hour},
	} {
		if s, err := NewRedis(opts); err == nil {
			s.Close()
			t.Errorf("NewRedis(%+v) succeeded", opts)
		} else if !strings.HasPrefix(err.Error(), "redis options: ") {
			t.Errorf("NewRedis(%+v): error %q lacks context", opts, err)
		}
	}
}

// TestRedisTLS only builds the client: no server is needed to see its options.
func TestRedisTLS(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		t.Run(fmt.Sprint(enabled), func(t *testing.T) {
			s, err := NewRedis(RedisOptions{Addrs: []string{"redis.example.net:6380"}, TLS: enabled})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			client, ok := s.client.(*redis.Client)
			if !ok {
				t.Fatalf("one address gave a %T, want *redis.Client", s.client)
			}
			cfg := client.Options().TLSConfig
			switch {
			case !enabled && cfg != nil:
				t.Errorf("TLS off, yet TLSConfig %+v", cfg)
			case enabled && cfg == nil:
				t.Error("TLS on, yet no TLSConfig")
			case enabled && (cfg.MinVersion < tls.VersionTLS12 || cfg.InsecureSkipVerify):
				t.Errorf("TLSConfig too weak: min version %x, insecure %v", cfg.MinVersion, cfg.InsecureSkipVerify)
			}
		})
	}
}

// TestRedisClientKinds checks which client redis.NewUniversalClient builds, and
// that TLS reaches it: single server, Sentinel, Cluster.
func TestRedisClientKinds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    RedisOptions
		cluster bool
	}{
		{"single", RedisOptions{Addrs: []string{"a:6379"}, TLS: true}, false},
		{"sentinel", RedisOptions{Addrs: []string{"a:26379", "b:26379"}, MasterName: "mymaster", TLS: true}, false},
		{"cluster", RedisOptions{Addrs: []string{"a:6379", "b:6379"}, TLS: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewRedis(tc.opts)
			if err != nil {
				t.Fatalf("NewRedis: %v", err)
			}
			defer s.Close()
			var cfg *tls.Config
			switch c := s.client.(type) {
			case *redis.Client:
				cfg = c.Options().TLSConfig
			case *redis.ClusterClient:
				cfg = c.Options().TLSConfig
			}
			if _, isCluster := s.client.(*redis.ClusterClient); isCluster != tc.cluster {
				t.Errorf("built a %T", s.client)
			}
			if cfg == nil {
				t.Error("no TLSConfig")
			}
		})
	}
}

func TestRedisOptionsLogValueHidesPassword(t *testing.T) {
	var b strings.Builder
	logger := slog.New(slog.NewTextHandler(&b, nil))
	logger.Info("redis", "opts", RedisOptions{Addrs: []string{"redis:6379"}, Password: "Sup3r-s3cret"})
	if strings.Contains(b.String(), "Sup3r-s3cret") {
		t.Errorf("log line leaks the password: %s", b.String())
	}
	if !strings.Contains(b.String(), "opts.password=true") {
		t.Errorf("log line does not say a password is set: %s", b.String())
	}
}

func TestTTL(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := &Redis{opts: RedisOptions{TTLGrace: time.Minute, Now: func() time.Time { return now }}}
	for _, tc := range []struct {
		expires, next time.Time
		want          time.Duration
	}{
		{time.Time{}, time.Time{}, time.Minute},
		{now.Add(-time.Hour), time.Time{}, time.Minute},
		{now, now, time.Minute},
		{now.Add(time.Hour), now.Add(time.Second), time.Hour + time.Minute},
		{now.Add(time.Second), now.Add(time.Hour), time.Hour + time.Minute},
		{now.Add(time.Nanosecond), time.Time{}, time.Minute + time.Millisecond},
		// A time in another zone is the same instant.
		{now.In(time.FixedZone("x", 3600)).Add(time.Hour), time.Time{}, time.Hour + time.Minute},
	} {
		rec := registration.Record{ExpiresAt: tc.expires, NextActionAt: tc.next}
		if got := r.ttl(rec); got != tc.want {
			t.Errorf("ttl(expires %v, next %v) = %v, want %v", tc.expires, tc.next, got, tc.want)
		}
	}
}

func TestEscapeGlob(t *testing.T) {
	for in, want := range map[string]string{
		"sipreg:registration:": "sipreg:registration:",
		"a*b?c[d]e":            `a\*b\?c\[d\]e`,
		`back\slash`:           `back\\slash`,
		"":                     "",
	} {
		if got := escapeGlob(in); got != want {
			t.Errorf("escapeGlob(%q) = %q, want %q", in, got, want)
		}
	}
}
