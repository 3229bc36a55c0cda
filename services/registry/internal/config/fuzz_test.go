package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"sipreg.dev/services/registry/internal/config"
)

// FuzzParse feeds arbitrary files to Parse. It must not panic; an error is one line that
// starts with the file name; an accepted config satisfies the validation rules. The seed
// corpus (the Routr example as YAML and JSON, and broken files) is in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"routr-example.yaml", "routr-example.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(name, data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("config returned with error %v", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, name+": ") {
				t.Fatalf("error %q does not start with the file name", msg)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q is not one line", msg)
			}
			return
		}
		s := cfg.Spec
		if cfg.Kind != "Registry" && cfg.Kind != "registry" || cfg.APIVersion != "v2beta1" {
			t.Fatalf("accepted kind %q apiVersion %q", cfg.Kind, cfg.APIVersion)
		}
		if s.RequesterAddr == "" || s.APIAddr == "" || len(s.EdgePorts) == 0 {
			t.Fatalf("accepted without a required field: %+v", s)
		}
		for i, ep := range s.EdgePorts {
			if ep.Host == "" || ep.Port < 1 || ep.Port > 65535 {
				t.Fatalf("edgePorts[%d] = %+v", i, ep)
			}
		}
		if s.RegisterInterval <= 0 || s.Expires < 1 || s.RegistersPerSecond < 0 || s.BackoffMax < s.BackoffBase {
			t.Fatalf("accepted out-of-range values: %+v", s)
		}
		if s.Cache.Provider != config.CacheMemory && s.Cache.Provider != config.CacheRedis {
			t.Fatalf("accepted cache provider %q", s.Cache.Provider)
		}
		if p := s.Cache.Redis.Port; p < 1 || p > 65535 || s.Cache.Redis.Host == "" {
			t.Fatalf("accepted redis %+v", s.Cache.Redis)
		}
		if s.MaxWatchStreams < 1 || s.ForceInterval <= 0 || s.StartupCacheWait < 0 {
			t.Fatalf("accepted maxWatchStreams %d, forceInterval %v, startupCacheWait %v", s.MaxWatchStreams, s.ForceInterval, s.StartupCacheWait)
		}
		// What goes on the SIP wire follows its grammar.
		if strings.TrimSpace(s.UserAgent) == "" || !utf8.ValidString(s.UserAgent) ||
			strings.ContainsFunc(s.UserAgent, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) {
			t.Fatalf("accepted userAgent %q", s.UserAgent)
		}
		for i, m := range s.Methods {
			if m == "" || strings.Trim(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~") != "" {
				t.Fatalf("accepted methods[%d] %q", i, m)
			}
		}
		for i, ep := range s.EdgePorts {
			if strings.Trim(ep.Host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:") != "" {
				t.Fatalf("accepted edgePorts[%d] host %q", i, ep.Host)
			}
		}
	})
}
