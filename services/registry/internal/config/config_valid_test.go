package config_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/config"
)

// Valid files: each is rendered and compared with testdata/golden/<name>.golden.
func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(t *testing.T, c *config.Config)
	}{
		{name: "kind-lowercase", input: strings.Replace(minimal(), "kind: Registry", "kind: registry", 1),
			check: func(t *testing.T, c *config.Config) {
				if c.Kind != "registry" {
					t.Errorf("kind = %q", c.Kind)
				}
			}},
		{name: "metadata", input: "kind: Registry\napiVersion: v2beta1\nmetadata:\n  name: registry\n  region: us\nspec:\n  " +
			requester + "\n  " + api + "\n  " + edge + "\n",
			check: func(t *testing.T, c *config.Config) {
				if len(c.Warnings) != 0 {
					t.Errorf("metadata must not warn: %q", c.Warnings)
				}
			}},
		{name: "interval-number", input: minimal("registerInterval: 20"), check: interval(20 * time.Second)},
		{name: "interval-float", input: minimal("registerInterval: 2.5"), check: interval(2500 * time.Millisecond)},
		{name: "interval-quoted-number", input: minimal(`registerInterval: "45"`), check: interval(45 * time.Second)},
		{name: "interval-60s", input: minimal(`registerInterval: 60s`), check: interval(60 * time.Second)},
		{name: "interval-1m30s", input: minimal(`registerInterval: "1m30s"`), check: interval(90 * time.Second)},
		{name: "redis-no-parameters", input: minimal("cache: {provider: redis}"),
			check: func(t *testing.T, c *config.Config) {
				r := c.Spec.Cache
				if r.Provider != config.CacheRedis || r.Redis.Host != "localhost" || r.Redis.Port != 6379 || r.Redis.Addr() != "localhost:6379" {
					t.Errorf("cache = %+v, want redis at localhost:6379", r)
				}
			}},
		{name: "redis-parameters", input: minimal(`cache: {provider: redis, parameters: "host=redis.local, port=6380,username=reg,password=pw,secure=true"}`),
			check: func(t *testing.T, c *config.Config) {
				want := config.RedisParams{Host: "redis.local", Port: 6380, Username: "reg", Password: "pw", Secure: true}
				if !reflect.DeepEqual(c.Spec.Cache.Redis, want) {
					t.Errorf("redis = %+v, want %+v", c.Spec.Cache.Redis, want)
				}
			}},
		{name: "redis-empty-parameters", input: minimal(`cache: {provider: redis, parameters: ""}`),
			check: func(t *testing.T, c *config.Config) {
				if c.Spec.Cache.Redis.Addr() != "localhost:6379" {
					t.Errorf("redis = %+v", c.Spec.Cache.Redis)
				}
			}},
		{name: "redis-sentinel", input: minimal(`cache: {provider: redis, parameters: "addrs=s1:26379;s2:26379,masterName=mymaster"}`),
			check: func(t *testing.T, c *config.Config) {
				r := c.Spec.Cache.Redis
				if !slices.Equal(r.Addrs, []string{"s1:26379", "s2:26379"}) || r.MasterName != "mymaster" {
					t.Errorf("redis = %+v", r)
				}
			}},
		{name: "methods-normalised", input: minimal("methods: [invite, MESSAGE, INVITE]"),
			check: func(t *testing.T, c *config.Config) {
				if !slices.Equal(c.Spec.Methods, []string{"INVITE", "MESSAGE"}) {
					t.Errorf("methods = %q (want upper case, without duplicates)", c.Spec.Methods)
				}
			}},
		{name: "edgeport-ipv6", input: withSpec(requester, api, `edgePorts: [{address: "[2001:db8::1]:5060"}]`),
			check: func(t *testing.T, c *config.Config) {
				if ep := c.Spec.EdgePorts[0]; ep.Host != "2001:db8::1" || ep.Port != 5060 {
					t.Errorf("edgePorts[0] = %+v", ep)
				}
			}},
		{name: "extensions", input: minimal(
			"expires: 3600", "userAgent: ' Acme/1.0 '", "authMode: registry", "gin: false",
			"apiTimeout: 5s", "requestTimeout: 45", "maxInFlight: 8", "registersPerSecond: 2.5",
			"startupSpread: 0", "backoffBase: 10s", "backoffMax: 10m", "rejectedRetry: 1h",
			"authFailedRetry: 2h", "unregisterOnShutdown: true", "shutdownTimeout: 3s",
			"controlAddr: 127.0.0.1:9000", "controlToken: t0k", "httpAddr: ':0'", "logFormat: json",
			"keyPrefix: 'x:'"),
			check: func(t *testing.T, c *config.Config) {
				s := c.Spec
				if s.Expires != 3600 || s.UserAgent != "Acme/1.0" || s.AuthMode != config.AuthRegistry || s.Gin ||
					s.RequestTimeout != 45*time.Second || s.StartupSpread != 0 || s.StartupSpreadAuto || !s.UnregisterOnStop || s.LogFormat != "json" {
					t.Errorf("spec = %+v", s)
				}
			}},
		{name: "hardening", input: withSpec(requester, api,
			"startupCacheWait: 2m", "maxWatchStreams: 8", "forceInterval: 250ms",
			`userAgent: "Acme\tRegistry/1.0 (ünïcode; ok)"`,
			"methods: [invite, x-Custom.1!%*_+`'~]",
			"edgePorts:", "  - address: 10.0.0.7:5060", "  - address: 'edge-1.example.org.:5061'", "  - address: '[::ffff:10.0.0.8]:5062'"),
			check: func(t *testing.T, c *config.Config) {
				s := c.Spec
				if s.StartupCacheWait != 2*time.Minute || s.MaxWatchStreams != 8 || s.ForceInterval != 250*time.Millisecond {
					t.Errorf("startupCacheWait, maxWatchStreams, forceInterval = %v, %d, %v", s.StartupCacheWait, s.MaxWatchStreams, s.ForceInterval)
				}
				if s.UserAgent != "Acme\tRegistry/1.0 (ünïcode; ok)" {
					t.Errorf("userAgent = %q", s.UserAgent)
				}
				if !slices.Equal(s.Methods, []string{"INVITE", "X-CUSTOM.1!%*_+`'~"}) {
					t.Errorf("methods = %q", s.Methods)
				}
				hosts := []string{}
				for _, ep := range s.EdgePorts {
					hosts = append(hosts, ep.Host)
				}
				if !slices.Equal(hosts, []string{"10.0.0.7", "edge-1.example.org.", "::ffff:10.0.0.8"}) {
					t.Errorf("edgePorts hosts = %q", hosts)
				}
			}},
		{name: "startupCacheWait-0", input: minimal("startupCacheWait: 0"),
			check: func(t *testing.T, c *config.Config) {
				if c.Spec.StartupCacheWait != 0 {
					t.Errorf("startupCacheWait = %v, want 0 (do not wait)", c.Spec.StartupCacheWait)
				}
			}},
		{name: "json-durations", input: `{"kind":"registry","apiVersion":"v2beta1","spec":{"requesterAddr":"r:1","apiAddr":"a:2",` +
			`"registerInterval":"1m30s","edgePorts":[{"address":"e:3"}],"cache":{"provider":"redis","parameters":"host=h,port=1"}}}`,
			check: func(t *testing.T, c *config.Config) {
				if c.Spec.RegisterInterval != 90*time.Second || c.Spec.Cache.Redis.Addr() != "h:1" {
					t.Errorf("spec = %+v", c.Spec)
				}
			}},
		{name: "unknown-keys-warn", input: "kind: Registry\napiVersion: v2beta1\nstatus: {}\nspec:\n  " + requester + "\n  " + api +
			"\n  edgePorts: [{address: 'e:5060', zone: a}]\n  registerIntervall: 30\n  cache: {provider: memory, ttl: 5}\n  requestTimeout: 30s\n",
			check: func(t *testing.T, c *config.Config) {
				want := []string{"status", "spec.registerIntervall", "spec.cache.ttl", "spec.edgePorts[0].zone", "spec.requestTimeout"}
				if len(c.Warnings) != len(want) {
					t.Fatalf("warnings = %q, want one for each of %q", c.Warnings, want)
				}
				for _, w := range want {
					if !slices.ContainsFunc(c.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
						t.Errorf("no warning names %s: %q", w, c.Warnings)
					}
				}
				for _, w := range c.Warnings {
					if !strings.HasPrefix(w, name+": ") || strings.Contains(w, "\n") {
						t.Errorf("warning %q: want one line starting with the file name", w)
					}
				}
				if c.Spec.RegisterInterval != 60*time.Second {
					t.Errorf("a misspelt key changed registerInterval to %v", c.Spec.RegisterInterval)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(name, []byte(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, cfg)
			golden(t, "golden/"+tt.name+".golden", render(cfg))
		})
	}
}

func interval(want time.Duration) func(*testing.T, *config.Config) {
	return func(t *testing.T, c *config.Config) {
		t.Helper()
		if c.Spec.RegisterInterval != want {
			t.Errorf("registerInterval = %v, want %v", c.Spec.RegisterInterval, want)
		}
	}
}

func TestParseRedisParams(t *testing.T) {
	def := config.RedisParams{Host: "localhost", Port: 6379}
	tests := []struct {
		in   string
		want config.RedisParams
	}{
		{"", def},
		{"   ", def},
		{"host=localhost,port=6379", def},
		{"host=redis", config.RedisParams{Host: "redis", Port: 6379}},
		{"port=6380", config.RedisParams{Host: "localhost", Port: 6380}},
		{" host = r1 , port = 7000 ,, ", config.RedisParams{Host: "r1", Port: 7000}},
		{"username=u,password=p=q", config.RedisParams{Host: "localhost", Port: 6379, Username: "u", Password: "p=q"}},
		{"secure=true", config.RedisParams{Host: "localhost", Port: 6379, Secure: true}},
		{"secure=false", def},
		{"addrs=a:1;b:2", config.RedisParams{Host: "localhost", Port: 6379, Addrs: []string{"a:1", "b:2"}}},
		{"addrs=a:1,masterName=m", config.RedisParams{Host: "localhost", Port: 6379, Addrs: []string{"a:1"}, MasterName: "m"}},
	}
	for _, tt := range tests {
		got, err := config.ParseRedisParams(tt.in)
		if err != nil {
			t.Errorf("ParseRedisParams(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRedisParams(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if got := (config.RedisParams{Host: "::1", Port: 6379}).Addr(); got != "[::1]:6379" {
		t.Errorf("Addr of an IPv6 host = %q", got)
	}
}
