package config_test

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sipreg.dev/services/registry/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// name is the file name every test passes to Parse; errors must start with it.
const name = "registry.yaml"

// golden compares got with testdata/<file>, or rewrites the file with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update and review the diff)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// render writes a Config one field per line, durations as durations, so that a golden
// file shows every default and every parsed value.
func render(c *config.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Path: %q\nKind: %s\nAPIVersion: %s\n", c.Path, c.Kind, c.APIVersion)
	v := reflect.ValueOf(c.Spec)
	for i := range v.NumField() {
		fmt.Fprintf(&b, "Spec.%s: %+v\n", v.Type().Field(i).Name, v.Field(i).Interface())
	}
	for _, w := range c.Warnings {
		fmt.Fprintf(&b, "Warning: %s\n", w)
	}
	return b.String()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withSpec builds a config file from spec lines (each indented under spec:).
func withSpec(lines ...string) string {
	var b strings.Builder
	b.WriteString("kind: Registry\napiVersion: v2beta1\nspec:\n")
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

var (
	requester = "requesterAddr: requester:51909"
	api       = "apiAddr: apiserver:51907"
	edge      = "edgePorts: [{address: 'sip01.edgeport.net:5060', region: us-east1}]"
)

// minimal is a valid config with only the required fields, plus extra spec lines.
func minimal(extra ...string) string {
	return withSpec(append([]string{requester, api, edge}, extra...)...)
}

// The Routr example, as YAML and as JSON, must load as is and mean the same.
func TestParseRoutrExample(t *testing.T) {
	for _, file := range []string{"routr-example.yaml", "routr-example.json"} {
		t.Run(file, func(t *testing.T) {
			cfg, err := config.Parse(file, readFile(t, filepath.Join("testdata", file)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Kind != "Registry" || cfg.APIVersion != "v2beta1" {
				t.Errorf("kind, apiVersion = %q, %q", cfg.Kind, cfg.APIVersion)
			}
			s := cfg.Spec
			if s.RequesterAddr != "requester:51909" || s.APIAddr != "apiserver:51907" {
				t.Errorf("requesterAddr, apiAddr = %q, %q", s.RequesterAddr, s.APIAddr)
			}
			if s.RegisterInterval != 20*time.Second {
				t.Errorf("registerInterval = %v, want 20s", s.RegisterInterval)
			}
			if s.Cache.Provider != config.CacheMemory {
				t.Errorf("cache.provider = %q", s.Cache.Provider)
			}
			if !slices.Equal(s.Methods, []string{"INVITE", "MESSAGE"}) {
				t.Errorf("methods = %q", s.Methods)
			}
			want := []config.EdgePort{
				{Address: "sip01.edgeport.net:5060", Host: "sip01.edgeport.net", Port: 5060, Region: "us-east1"},
				{Address: "sip02.edgeport.net:6060", Host: "sip02.edgeport.net", Port: 6060},
			}
			if !reflect.DeepEqual(s.EdgePorts, want) {
				t.Errorf("edgePorts = %+v, want %+v", s.EdgePorts, want)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("warnings = %q, want none", cfg.Warnings)
			}
			golden(t, "golden/routr-example.golden", render(cfg))
		})
	}
}

// Defaults: everything not in the file. The golden file lists all of them; the most
// important ones are asserted here as well.
func TestParseDefaults(t *testing.T) {
	cfg, err := config.Parse(name, []byte(minimal()))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Spec
	checks := []struct {
		field     string
		got, want any
	}{
		{"RegisterInterval", s.RegisterInterval, 60 * time.Second},
		{"Cache.Provider", s.Cache.Provider, config.CacheMemory},
		{"Cache.Redis.Addr", s.Cache.Redis.Addr(), "localhost:6379"},
		{"Expires", s.Expires, 600},
		{"AuthMode", s.AuthMode, config.AuthEdgePort},
		{"Gin", s.Gin, true},
		{"RequestTimeout > 32s", s.RequestTimeout > 32*time.Second, true},
		{"BackoffBase <= BackoffMax", s.BackoffBase <= s.BackoffMax, true},
		{"RegistersPerSecond", s.RegistersPerSecond, 0.0},
		{"StartupSpread", s.StartupSpread, time.Duration(0)},
		{"StartupSpreadAuto", s.StartupSpreadAuto, true},
		{"MaxInFlight > 0", s.MaxInFlight > 0, true},
		{"ControlAddr", s.ControlAddr, ":51910"},
		{"StartupCacheWait", s.StartupCacheWait, 30 * time.Second},
		{"MaxWatchStreams", s.MaxWatchStreams, 256},
		{"ForceInterval", s.ForceInterval, time.Second},
		{"UserAgent", s.UserAgent, "Routr Registry (sipreg)"},
		{"HTTPAddr", s.HTTPAddr, ":8080"},
		{"LogFormat", s.LogFormat, "text"},
		{"Methods", len(s.Methods), 0},
		{"Warnings", len(cfg.Warnings), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	golden(t, "golden/defaults.golden", render(cfg))
}

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

// Every invalid file is refused with one line that starts with the file name and, for a
// field, goes on with the field's path. All messages are kept in testdata/errors.golden,
// for review.
func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		field string   // the error starts with "registry.yaml: <field>: " ("" for syntax errors)
		also  []string // more substrings of the error
	}{
		{"kind-unknown", "kind: Trunk\napiVersion: v2beta1\nspec: {}\n", "kind", []string{`"Trunk"`}},
		{"kind-wrong-case", strings.Replace(minimal(), "kind: Registry", "kind: REGISTRY", 1), "kind", nil},
		{"kind-missing", "apiVersion: v2beta1\nspec: {}\n", "kind", []string{"missing"}},
		{"apiVersion-unknown", "kind: Registry\napiVersion: v2\nspec: {}\n", "apiVersion", []string{`"v2"`}},
		{"apiVersion-missing", "kind: Registry\nspec: {}\n", "apiVersion", []string{"missing"}},
		{"spec-missing", "kind: Registry\napiVersion: v2beta1\n", "spec", []string{"missing"}},
		{"spec-not-mapping", "kind: Registry\napiVersion: v2beta1\nspec: hello\n", "spec", []string{"line 3"}},
		{"requesterAddr-missing", withSpec(api, edge), "spec.requesterAddr", []string{"missing"}},
		{"apiAddr-missing", withSpec(requester, edge), "spec.apiAddr", []string{"missing"}},
		{"edgePorts-missing", withSpec(requester, api), "spec.edgePorts", []string{"missing"}},
		{"requesterAddr-empty", withSpec(`requesterAddr: ""`, api, edge), "spec.requesterAddr", []string{"missing"}},
		{"requesterAddr-no-port", withSpec("requesterAddr: requester", api, edge), "spec.requesterAddr", []string{"missing port"}},
		{"requesterAddr-list", withSpec("requesterAddr: [a, b]", api, edge), "spec.requesterAddr", []string{"line 4"}},
		{"apiAddr-port-0", withSpec(requester, "apiAddr: apiserver:0", edge), "spec.apiAddr", []string{"bad port"}},
		{"edgePorts-empty", withSpec(requester, api, "edgePorts: []"), "spec.edgePorts", []string{"empty"}},
		{"edgePorts-string", withSpec(requester, api, "edgePorts: sip01.edgeport.net:5060"), "spec.edgePorts", []string{"line 6"}},
		{"edgePorts-item-string", withSpec(requester, api, "edgePorts: ['sip01.edgeport.net:5060']"), "spec.edgePorts[0]", []string{"line 6"}},
		{"edgePorts-address-missing", withSpec(requester, api, "edgePorts: [{region: us-east1}]"), "spec.edgePorts[0].address", []string{"missing"}},
		{"edgePorts-address-no-port", withSpec(requester, api, "edgePorts:", "  - address: sip01.edgeport.net:5060", "  - address: sip02.edgeport.net"),
			"spec.edgePorts[1].address", []string{`"sip02.edgeport.net"`, "missing port"}},
		{"edgePorts-address-port-0", withSpec(requester, api, "edgePorts: [{address: 'a:5060'}, {address: 'b:0'}]"), "spec.edgePorts[1].address", []string{"bad port"}},
		{"edgePorts-address-port-70000", withSpec(requester, api, "edgePorts: [{address: 'a:70000'}]"), "spec.edgePorts[0].address", []string{"bad port"}},
		{"edgePorts-address-port-abc", withSpec(requester, api, "edgePorts: [{address: 'a:abc'}]"), "spec.edgePorts[0].address", []string{"bad port"}},
		{"edgePorts-address-no-host", withSpec(requester, api, "edgePorts: [{address: ':5060'}]"), "spec.edgePorts[0].address", []string{"missing host"}},
		{"edgePorts-address-map", withSpec(requester, api, "edgePorts: [{address: {host: a}}]"), "spec.edgePorts[0].address", []string{"line 6"}},
		{"methods-map", minimal("methods: {INVITE: true}"), "spec.methods", []string{"line 7"}},
		{"methods-string", minimal("methods: INVITE"), "spec.methods", []string{"line 7"}},
		{"methods-item-bad", minimal(`methods: [INVITE, "MES SAGE"]`), "spec.methods[1]", nil},
		{"methods-item-list", minimal(`methods: [[INVITE]]`), "spec.methods[0]", nil},
		// Methods go on the wire (Allow): each must be an RFC 3261 token.
		{"methods-item-empty", minimal(`methods: [INVITE, ""]`), "spec.methods[1]", []string{"line 7", "token"}},
		{"methods-item-comma", minimal(`methods: ["INVITE,BYE"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-colon", minimal(`methods: ["X:Y"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-slash", minimal(`methods: ["A/B"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-quote", minimal(`methods: ['"INVITE"']`), "spec.methods[0]", []string{"token"}},
		{"methods-item-parenthesis", minimal(`methods: ["INVITE()"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-crlf", minimal(`methods: ["INVITE\r\nX-Evil: 1"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-non-ascii", minimal(`methods: ["ınvıte"]`), "spec.methods[0]", []string{"token"}},
		{"methods-item-long-s", minimal(`methods: ["meſſage"]`), "spec.methods[0]", []string{"token"}},
		// userAgent goes on the wire (User-Agent): TEXT-UTF8, not empty.
		{"userAgent-empty", minimal(`userAgent: ""`), "spec.userAgent", []string{"line 7", "empty"}},
		{"userAgent-blank", minimal(`userAgent: "  "`), "spec.userAgent", []string{"line 7", "empty"}},
		{"userAgent-null", minimal(`userAgent:`), "spec.userAgent", []string{"line 7", "empty"}},
		{"userAgent-crlf", minimal(`userAgent: "Acme\r\nX-Evil: 1"`), "spec.userAgent", []string{"line 7", "U+000D"}},
		{"userAgent-lf", minimal(`userAgent: "Acme\nX-Evil: 1"`), "spec.userAgent", []string{"U+000A"}},
		{"userAgent-nul", minimal(`userAgent: "Acme\0"`), "spec.userAgent", []string{"U+0000"}},
		{"userAgent-del", minimal(`userAgent: "Acme\x7f"`), "spec.userAgent", []string{"U+007F"}},
		{"userAgent-c1", minimal(`userAgent: "Ac\u0085me"`), "spec.userAgent", []string{"U+0085"}},
		{"userAgent-list", minimal(`userAgent: [Acme]`), "spec.userAgent", []string{"line 7"}},
		// EdgePort hosts go on the wire (Route): hostname, IPv4 or [IPv6].
		{"edgePorts-host-underscore", withSpec(requester, api, "edgePorts: [{address: 'edge_1.example:5060'}]"),
			"spec.edgePorts[0].address", []string{`"edge_1.example"`, "hostname"}},
		{"edgePorts-host-space", withSpec(requester, api, "edgePorts: [{address: 'edge 1:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-at", withSpec(requester, api, "edgePorts: [{address: 'alice@edge:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-leading-hyphen", withSpec(requester, api, "edgePorts: [{address: '-edge.example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-trailing-hyphen", withSpec(requester, api, "edgePorts: [{address: 'edge-.example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-empty-label", withSpec(requester, api, "edgePorts: [{address: 'edge..example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-digit-toplabel", withSpec(requester, api, "edgePorts: [{address: 'edge.123:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-bad-ipv4", withSpec(requester, api, "edgePorts: [{address: '999.1.1.1:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-non-ascii", withSpec(requester, api, "edgePorts: [{address: 'édge.example:5060'}]"), "spec.edgePorts[0].address", []string{"hostname"}},
		{"edgePorts-host-bracketed-ipv4", withSpec(requester, api, "edgePorts: [{address: '[10.0.0.1]:5060'}]"), "spec.edgePorts[0].address", []string{"IPv6"}},
		{"edgePorts-host-bracketed-name", withSpec(requester, api, "edgePorts: [{address: '[edge]:5060'}]"), "spec.edgePorts[0].address", []string{"IPv6"}},
		{"edgePorts-host-ipv6-zone", withSpec(requester, api, "edgePorts: [{address: '[fe80::1%eth0]:5060'}]"), "spec.edgePorts[0].address", []string{"IPv6"}},
		// New durations and limits.
		{"startupCacheWait-negative", minimal("startupCacheWait: -1s"), "spec.startupCacheWait", []string{"line 7", "must not be negative"}},
		{"startupCacheWait-abc", minimal("startupCacheWait: soon"), "spec.startupCacheWait", []string{"line 7", `"soon"`}},
		{"maxWatchStreams-0", minimal("maxWatchStreams: 0"), "spec.maxWatchStreams", []string{"line 7", "out of range"}},
		{"maxWatchStreams-negative", minimal("maxWatchStreams: -3"), "spec.maxWatchStreams", []string{"line 7", "out of range"}},
		{"maxWatchStreams-float", minimal("maxWatchStreams: 2.5"), "spec.maxWatchStreams", []string{"line 7", "whole number"}},
		{"forceInterval-0", minimal("forceInterval: 0"), "spec.forceInterval", []string{"line 7", "greater than zero"}},
		{"forceInterval-negative", minimal("forceInterval: -1s"), "spec.forceInterval", []string{"line 7", "greater than zero"}},
		{"forceInterval-list", minimal("forceInterval: [1s]"), "spec.forceInterval", []string{"line 7"}},
		{"cache-not-mapping", minimal("cache: memory"), "spec.cache", []string{"line 7"}},
		{"cache-provider-unknown", minimal("cache: {provider: memcached}"), "spec.cache.provider", []string{`"memcached"`}},
		{"cache-provider-missing", minimal(`cache: {parameters: "host=redis"}`), "spec.cache.provider", []string{"missing"}},
		{"cache-empty", minimal("cache: {}"), "spec.cache.provider", []string{"missing"}},
		{"cache-provider-null", minimal("cache: {provider: }"), "spec.cache.provider", nil},
		{"cache-param-unknown", minimal(`cache: {provider: redis, parameters: "host=redis,db=2"}`), "spec.cache.parameters", []string{`"db"`}},
		{"cache-param-malformed", minimal(`cache: {provider: redis, parameters: "host=redis,port"}`), "spec.cache.parameters", []string{"key=value"}},
		{"cache-param-twice", minimal(`cache: {provider: redis, parameters: "host=a,host=b"}`), "spec.cache.parameters", []string{"twice"}},
		{"cache-param-host-empty", minimal(`cache: {provider: redis, parameters: "host="}`), "spec.cache.parameters", []string{"host"}},
		{"cache-param-port-abc", minimal(`cache: {provider: redis, parameters: "port=abc"}`), "spec.cache.parameters", []string{"port"}},
		{"cache-param-port-0", minimal(`cache: {provider: redis, parameters: "port=0"}`), "spec.cache.parameters", []string{"port"}},
		{"cache-param-port-70000", minimal(`cache: {provider: redis, parameters: "port=70000"}`), "spec.cache.parameters", []string{"port"}},
		{"cache-param-secure", minimal(`cache: {provider: redis, parameters: "secure=maybe"}`), "spec.cache.parameters", []string{"secure"}},
		{"cache-param-addrs", minimal(`cache: {provider: redis, parameters: "addrs=a:1;b"}`), "spec.cache.parameters", []string{"addrs"}},
		{"cache-param-master-no-addrs", minimal(`cache: {provider: redis, parameters: "masterName=m"}`), "spec.cache.parameters", []string{"masterName"}},
		{"cache-parameters-list", minimal(`cache: {provider: redis, parameters: [host=a]}`), "spec.cache.parameters", []string{"line 7"}},
		{"registerInterval-0", minimal("registerInterval: 0"), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-0s", minimal("registerInterval: 0s"), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-negative", minimal("registerInterval: -5"), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-negative-duration", minimal(`registerInterval: "-1s"`), "spec.registerInterval", []string{"line 7", "greater than zero"}},
		{"registerInterval-abc", minimal("registerInterval: abc"), "spec.registerInterval", []string{"line 7", `"abc"`}},
		{"registerInterval-empty", minimal("registerInterval:"), "spec.registerInterval", []string{"line 7"}},
		{"registerInterval-huge", minimal("registerInterval: 1e300"), "spec.registerInterval", []string{"line 7", "out of range"}},
		{"registerInterval-nan", minimal("registerInterval: .nan"), "spec.registerInterval", []string{"line 7"}},
		{"registerInterval-list", minimal("registerInterval: [20]"), "spec.registerInterval", []string{"line 7"}},
		{"expires-0", minimal("expires: 0"), "spec.expires", []string{"line 7", "out of range"}},
		{"expires-float", minimal("expires: 1.5"), "spec.expires", []string{"line 7", "whole number"}},
		{"authMode-unknown", minimal("authMode: direct"), "spec.authMode", []string{`"direct"`}},
		{"gin-not-bool", minimal("gin: sometimes"), "spec.gin", []string{"line 7"}},
		{"maxInFlight-0", minimal("maxInFlight: 0"), "spec.maxInFlight", []string{"line 7"}},
		{"registersPerSecond-negative", minimal("registersPerSecond: -1"), "spec.registersPerSecond", []string{"line 7", "must not be negative"}},
		{"registersPerSecond-negative-fraction", minimal("registersPerSecond: -0.5"), "spec.registersPerSecond", []string{"line 7"}},
		{"registersPerSecond-inf", minimal("registersPerSecond: .inf"), "spec.registersPerSecond", []string{"line 7"}},
		{"startupSpread-negative", minimal("startupSpread: -1s"), "spec.startupSpread", []string{"line 7"}},
		{"backoffMax-below-base", minimal("backoffBase: 1m", "backoffMax: 30s"), "spec.backoffMax", nil},
		{"controlAddr-no-port", minimal("controlAddr: localhost"), "spec.controlAddr", nil},
		{"httpAddr-bad-port", minimal("httpAddr: ':99999'"), "spec.httpAddr", nil},
		{"edgePorts-address-too-many-colons", withSpec(requester, api, "edgePorts: [{address: 'a:b:5060'}]"), "spec.edgePorts[0].address", []string{"want host:port"}},
		{"gin-list", minimal("gin: [true]"), "spec.gin", []string{"line 7"}},
		{"expires-map", minimal("expires: {a: 1}"), "spec.expires", []string{"line 7"}},
		{"registersPerSecond-list", minimal("registersPerSecond: [1]"), "spec.registersPerSecond", []string{"line 7"}},
		{"registersPerSecond-abc", minimal("registersPerSecond: fast"), "spec.registersPerSecond", []string{"line 7", `"fast"`}},
		{"controlAddr-list", minimal("controlAddr: [':1']"), "spec.controlAddr", []string{"line 7"}},
		{"logFormat-unknown", minimal("logFormat: xml"), "spec.logFormat", []string{`"xml"`}},
		{"yaml-broken", "kind: Registry\napiVersion: v2beta1\nspec:\n  requesterAddr: [\n", "", []string{"line 4"}},
		{"yaml-bad-indent", "kind: Registry\napiVersion: v2beta1\nspec:\n  requesterAddr: a:1\n apiAddr: b:2\n", "", []string{"line "}},
		{"json-broken", "{\"kind\": \"Registry\",\n \"apiVersion\": \"v2beta1\"\n \"spec\": {}}\n", "", []string{"line 2"}},
		{"json-unterminated", "{\"kind\": \"Registry\",\n \"spec\": {\"requesterAddr\": \"a:1\"\n", "", []string{"line "}},
		{"json-edgePorts-string", `{"kind":"Registry","apiVersion":"v2beta1","spec":{"requesterAddr":"a:1","apiAddr":"b:2","edgePorts":"e:3"}}`,
			"spec.edgePorts", []string{"line 1"}},
		{"json-methods-map", `{"kind":"Registry","apiVersion":"v2beta1","spec":{"requesterAddr":"a:1","apiAddr":"b:2","edgePorts":[{"address":"e:3"}],"methods":{"INVITE":1}}}`,
			"spec.methods", []string{"line 1"}},
		{"json-registerInterval-bool", `{"kind":"Registry","apiVersion":"v2beta1","spec":{"requesterAddr":"a:1","apiAddr":"b:2","edgePorts":[{"address":"e:3"}],"registerInterval":true}}`,
			"spec.registerInterval", []string{"line 1"}},
		{"empty-file", "", "", nil},
		{"top-level-list", "- kind: Registry\n", "", nil},
		{"top-level-scalar", "Registry\n", "", nil},
		{"control-character", "kind: Registry\x01\n", "", nil},
	}
	var all strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse(name, []byte(tt.input))
			if err == nil {
				t.Fatalf("Parse accepted it:\n%s", render(cfg))
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with the error %v", err)
			}
			msg := err.Error()
			fmt.Fprintf(&all, "%s: %s\n", tt.name, msg)
			checkOneLine(t, msg)
			if tt.field != "" && !strings.HasPrefix(msg, name+": "+tt.field+": ") {
				t.Errorf("error %q does not start with %q", msg, name+": "+tt.field+": ")
			}
			for _, w := range tt.also {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
	if !t.Failed() {
		golden(t, "errors.golden", all.String())
	}
}

// checkOneLine asserts the house rule for errors: one line, starting with the file name.
func checkOneLine(t *testing.T, msg string) {
	t.Helper()
	if !strings.HasPrefix(msg, name+": ") {
		t.Errorf("error %q does not start with %q", msg, name+": ")
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q is not one line", msg)
	}
}

// A password in cache.parameters never appears in an error, whatever else is wrong.
func TestParseRedisPasswordNeverInErrors(t *testing.T) {
	const secret = "s3cret"
	tests := []struct{ name, params, fragment string }{
		{"malformed after password", "password=s3cret,bogus", secret},
		{"malformed password", "host=redis,passwords3cret", secret},
		{"malformed password with colon", "password:s3cret", secret},
		{"malformed password in capitals", "PASSWORD s3cret", secret},
		{"unknown after password", "password=s3cret,db=2", secret},
		{"bad port after password", "password=s3cret,port=abc", secret},
		{"bad secure after password", "password=s3cret,secure=maybe", secret},
		{"password twice", "password=s3cret,password=s3cret", secret},
		{"master without addrs", "password=s3cret,masterName=m", secret},
		{"bad addrs", "password=s3cret,addrs=a", secret},
		// A password with a comma is split by the parameters syntax (Routr's too); the part
		// after the comma is still the password and must not be quoted.
		{"comma in password", "password=s3cret,Zq9w", "Zq9w"},
		{"comma and equals in password", "password=s3cret,Zq9w=x", "Zq9w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseRedisParams(tt.params)
			if err == nil {
				t.Fatalf("ParseRedisParams(%q) accepted it", tt.params)
			}
			if strings.Contains(err.Error(), tt.fragment) {
				t.Errorf("ParseRedisParams error %q shows the password (%q)", err, tt.fragment)
			}
			in := minimal(fmt.Sprintf("cache: {provider: redis, parameters: %q}", tt.params))
			_, err = config.Parse(name, []byte(in))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			checkOneLine(t, err.Error())
			if !strings.Contains(err.Error(), "spec.cache.parameters: ") {
				t.Errorf("error %q does not name spec.cache.parameters", err)
			}
			if strings.Contains(err.Error(), tt.fragment) {
				t.Errorf("Parse error %q shows the password (%q)", err, tt.fragment)
			}
		})
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

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	t.Setenv("CONTROL_API_TOKEN", "")
	path := writeConfig(t, string(readFile(t, filepath.Join("testdata", "routr-example.yaml"))))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != path {
		t.Errorf("Path = %q, want %q", cfg.Path, path)
	}
	if cfg.Spec.RegisterInterval != 20*time.Second || len(cfg.Spec.EdgePorts) != 2 {
		t.Errorf("spec = %+v", cfg.Spec)
	}
	if cfg.Spec.ControlToken != "" {
		t.Errorf("ControlToken = %q without CONTROL_API_TOKEN and controlToken", cfg.Spec.ControlToken)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "registry.yaml")
	cfg, err := config.Load(path)
	if err == nil {
		t.Fatalf("Load of a missing file: %+v", cfg)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v is not fs.ErrNotExist", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is not one line", err)
	}
}

func TestLoadInvalidFileNamesIt(t *testing.T) {
	path := writeConfig(t, withSpec(requester, api, "edgePorts: [{address: 'a:5060'}, {address: b}]"))
	_, err := config.Load(path)
	if err == nil {
		t.Fatal("Load accepted an invalid file")
	}
	checkOneLine(t, err.Error())
	if !strings.Contains(err.Error(), "spec.edgePorts[1].address") {
		t.Errorf("error %q does not name the field", err)
	}
}

func TestLoadControlToken(t *testing.T) {
	path := writeConfig(t, minimal("controlToken: from-file"))
	tests := []struct{ env, want string }{
		{"", "from-file"},
		{"from-env", "from-env"},
	}
	for _, tt := range tests {
		t.Run("env="+tt.env, func(t *testing.T) {
			t.Setenv("CONTROL_API_TOKEN", tt.env)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Spec.ControlToken != tt.want {
				t.Errorf("ControlToken = %q, want %q", cfg.Spec.ControlToken, tt.want)
			}
		})
	}
	t.Run("env without file value", func(t *testing.T) {
		t.Setenv("CONTROL_API_TOKEN", "only-env")
		cfg, err := config.Load(writeConfig(t, minimal()))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Spec.ControlToken != "only-env" {
			t.Errorf("ControlToken = %q", cfg.Spec.ControlToken)
		}
	})
}

func TestPath(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	if config.DefaultPath != "/etc/routr/registry.yaml" {
		t.Errorf("DefaultPath = %q, want Routr's CONFIG_PATH", config.DefaultPath)
	}
	if got := config.Path(""); got != config.DefaultPath {
		t.Errorf("Path() = %q, want %q", got, config.DefaultPath)
	}
	t.Setenv("CONFIG_PATH", "/env/registry.yaml")
	if got := config.Path(""); got != "/env/registry.yaml" {
		t.Errorf("Path() with CONFIG_PATH = %q", got)
	}
	if got := config.Path("/flag.yaml"); got != "/flag.yaml" {
		t.Errorf("Path(flag) = %q, the flag must win", got)
	}
}

// TestParseScaleDefaults: no global rate cap unless one is given (0 is accepted and
// means none); startupSpread left out scales with the trunks, given (even 0) it is
// used exactly.
func TestParseScaleDefaults(t *testing.T) {
	for _, c := range []struct {
		name   string
		input  string
		rps    float64
		spread time.Duration
		auto   bool
	}{
		{"defaults", minimal(), 0, 0, true},
		{"registersPerSecond-0", minimal("registersPerSecond: 0"), 0, 0, true},
		{"registersPerSecond-250", minimal("registersPerSecond: 250"), 250, 0, true},
		{"startupSpread-0", minimal("startupSpread: 0"), 0, 0, false},
		{"startupSpread-0s", minimal("startupSpread: 0s"), 0, 0, false},
		{"startupSpread-5s", minimal("startupSpread: 5s"), 0, 5 * time.Second, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse(name, []byte(c.input))
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Spec
			if s.RegistersPerSecond != c.rps || s.StartupSpread != c.spread || s.StartupSpreadAuto != c.auto {
				t.Errorf("registersPerSecond %g, startupSpread %v (auto %v); want %g, %v (auto %v)",
					s.RegistersPerSecond, s.StartupSpread, s.StartupSpreadAuto, c.rps, c.spread, c.auto)
			}
		})
	}
}
