// Package config loads, defaults and validates the registry's configuration file: the
// same file Routr's Registry reads (kind Registry, apiVersion v2beta1, spec ...), YAML or
// JSON, plus optional extensions of spec, each with a default. Every error names the
// file and the field. What the environment overrides is in one place, env.go.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPath is where Routr's image puts the registry's config.
const DefaultPath = "/etc/routr/registry.yaml"

// Auth modes: who answers digest challenges.
const (
	// AuthEdgePort: through Routr. Every REGISTER carries X-Gateway-Auth and Routr's
	// EdgePort answers 401/407; a challenge that reaches the registry means the
	// credentials are wrong.
	AuthEdgePort = "edgeport"
	// AuthRegistry: straight to a registrar (a SIP requester that does not answer
	// challenges). No X-Gateway-Auth; the registry answers 401/407 itself.
	AuthRegistry = "registry"
)

// Cache providers.
const (
	CacheMemory = "memory"
	CacheRedis  = "redis"
)

// Config is the whole file.
type Config struct {
	// Path is the file the config was read from (for messages).
	Path       string
	Kind       string
	APIVersion string
	Spec       Spec
	// Warnings are things worth a log line that do not stop the service (unknown keys).
	Warnings []string
}

// Spec is the registry's settings. The first group is Routr's; the rest are this
// registry's extensions, all optional.
type Spec struct {
	RequesterAddr    string
	APIAddr          string
	RegisterInterval time.Duration
	Cache            Cache
	Methods          []string
	EdgePorts        []EdgePort

	// Expires is the lifetime asked for in each REGISTER, in seconds.
	Expires int
	// UserAgent is the User-Agent header value: SIP TEXT-UTF8 (no control character but
	// a tab), never empty.
	UserAgent string
	// AuthMode is AuthEdgePort or AuthRegistry.
	AuthMode string
	// Gin sends Require/Proxy-Require: gin as Routr does; a 420 turns it off per trunk.
	Gin bool
	// APITimeout bounds one Trunks/FindBy call.
	APITimeout time.Duration
	// RequestTimeout bounds one Requester/SendMessage call (Routr's Timer F is 32 s).
	RequestTimeout time.Duration
	// MaxInFlight caps concurrent SendMessage calls; RegistersPerSecond caps their rate
	// (0, the default: no global cap; each registrar's share of MaxInFlight protects it).
	MaxInFlight        int
	RegistersPerSecond float64
	// StartupSpread spreads the first REGISTER of each trunk after a start (or a claim)
	// over a window this long (0: all at once).
	StartupSpread time.Duration
	// StartupSpreadAuto is set when the file leaves startupSpread out: the window then
	// scales with the number of trunks scheduled at once (a 20,000th of a second per
	// trunk, at most 5 s) and StartupSpread is not used.
	StartupSpreadAuto bool
	// StartupCacheWait is how long, at a start with the cache unreachable, the registry
	// waits for it before it sends a REGISTER for a trunk whose record it could not read
	// (0: it does not wait).
	StartupCacheWait time.Duration
	// Retry policy.
	BackoffBase      time.Duration
	BackoffMax       time.Duration
	RejectedRetry    time.Duration
	AuthFailedRetry  time.Duration
	UnregisterOnStop bool
	ShutdownTimeout  time.Duration
	ControlAddr      string
	ControlToken     string
	// MaxWatchStreams caps the WatchRegistrations streams open at once on this replica.
	MaxWatchStreams int
	// ForceInterval is the least time between two forced REGISTERs of one trunk.
	ForceInterval time.Duration
	HTTPAddr      string
	LogFormat     string
	KeyPrefix     string
	// ClusterMode shares the trunks among every replica on the same Redis.
	ClusterMode bool
	// LeaseTTL is how long a replica's claim on a trunk lasts without renewal.
	LeaseTTL time.Duration
	// AdvertiseAddr is this replica's control API address as the others reach it
	// (ForceRegister is forwarded to the trunk's owner).
	AdvertiseAddr string
	// ReplicaID names this replica among the others (default hostname-pid-random).
	ReplicaID string
	// MemoryLimit is a soft limit for the Go runtime in bytes (0: none; GOMEMLIMIT wins).
	MemoryLimit int64
}

// Cache says where per-trunk state is kept.
type Cache struct {
	Provider string
	// Redis holds the parsed parameters; its password is never logged.
	Redis RedisParams
}

// RedisParams are the parsed cache.parameters.
type RedisParams struct {
	Host     string
	Port     int
	Username string
	Password string
	Secure   bool
	// Addrs (extension) lists several host:port, separated by ';' in the parameters
	// string: Redis Cluster nodes, or Sentinels when MasterName is set.
	Addrs      []string
	MasterName string
}

// Addr is host:port of the single Redis server.
func (p RedisParams) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// EdgePort is one Routr EdgePort REGISTERs are routed through.
type EdgePort struct {
	Address string
	Host    string
	Port    int
	Region  string
}

// Load reads and validates the file at path. Environment overrides: CONTROL_API_TOKEN
// (see env.go).
func Load(path string) (*Config, error) { return load(path, os.Getenv) }

func load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, unwrapPathError(err))
	}
	cfg, err := Parse(filepath.Base(path), data)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	cfg.Spec.ControlToken = controlToken(cfg.Spec.ControlToken, getenv)
	return cfg, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse reads a config from data; name is used in messages (usually the file's base name).
func Parse(name string, data []byte) (*Config, error) {
	cfg, warnings, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, w := range warnings {
		cfg.Warnings = append(cfg.Warnings, name+": "+w)
	}
	return cfg, nil
}

// file is the top of the config file: Routr's resource header, and spec, decoded once
// the header is known to be a Registry's.
type file struct {
	Kind       literal  `yaml:"kind"`
	APIVersion literal  `yaml:"apiVersion"`
	Metadata   ignored  `yaml:"metadata"`
	Spec       deferred `yaml:"spec"`
}

// parse reads the first YAML (or JSON) document of data: the header, then spec. Errors
// and warnings are without the file's name.
func parse(data []byte) (*Config, []string, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("the file is empty (want kind, apiVersion and spec)")
		}
		return nil, nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("the file must hold a mapping with kind, apiVersion and spec")
	}
	var f file
	unknown, err := decodeFields(root.Content[0], &f)
	if err != nil {
		return nil, nil, err // not reached: the header's values take anything
	}
	cfg := &Config{Kind: string(f.Kind), APIVersion: string(f.APIVersion)}
	switch {
	case cfg.Kind == "":
		return nil, nil, fieldAt("kind", 0, "missing (want Registry)")
	case cfg.Kind != "Registry" && cfg.Kind != "registry":
		return nil, nil, fieldAt("kind", 0, "%q is not Registry", cfg.Kind)
	case cfg.APIVersion == "":
		return nil, nil, fieldAt("apiVersion", 0, "missing (want v2beta1)")
	case cfg.APIVersion != "v2beta1":
		return nil, nil, fieldAt("apiVersion", 0, "%q is not supported (want v2beta1)", cfg.APIVersion)
	case f.Spec.node == nil:
		return nil, nil, fieldAt("spec", 0, "missing")
	}
	var s specFile
	if err := s.UnmarshalYAML(f.Spec.node); err != nil {
		return nil, nil, under("spec", err)
	}
	for _, w := range s.takeWarnings() {
		unknown = append(unknown, w.under("spec"))
	}
	spec, notes, err := s.resolve()
	if err != nil {
		return nil, nil, err
	}
	cfg.Spec = spec
	var warnings []string
	for _, w := range unknown {
		warnings = append(warnings, w.unknownField())
	}
	for _, w := range notes {
		warnings = append(warnings, w.Error())
	}
	return cfg, warnings, nil
}
