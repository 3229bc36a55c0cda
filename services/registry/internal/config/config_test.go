package config_test

import (
	"flag"
	"fmt"
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
