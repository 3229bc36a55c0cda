// Package config loads, defaults and validates the registry's configuration file: the
// same file Routr's Registry reads (kind Registry, apiVersion v2beta1, spec ...), YAML or
// JSON, plus optional extensions of spec, each with a default. Every error names the
// file and the field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	// MaxInFlight caps concurrent SendMessage calls; RegistersPerSecond caps their rate.
	MaxInFlight        int
	RegistersPerSecond float64
	// StartupSpread spreads the first REGISTER of each trunk after a start.
	StartupSpread time.Duration
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

// defaults returns a Spec with every default set; Load overlays the file on it.
func defaults() Spec {
	return Spec{
		RegisterInterval:   60 * time.Second,
		Cache:              Cache{Provider: CacheMemory, Redis: RedisParams{Host: "localhost", Port: 6379}},
		Expires:            600,
		UserAgent:          "Routr Registry (sipreg)",
		AuthMode:           AuthEdgePort,
		Gin:                true,
		APITimeout:         30 * time.Second,
		RequestTimeout:     40 * time.Second,
		MaxInFlight:        64,
		RegistersPerSecond: 100,
		StartupSpread:      5 * time.Second,
		StartupCacheWait:   30 * time.Second,
		BackoffBase:        30 * time.Second,
		BackoffMax:         30 * time.Minute,
		RejectedRetry:      30 * time.Minute,
		AuthFailedRetry:    30 * time.Minute,
		ShutdownTimeout:    10 * time.Second,
		ControlAddr:        ":51910",
		MaxWatchStreams:    256,
		ForceInterval:      time.Second,
		HTTPAddr:           ":8080",
		LogFormat:          "text",
		KeyPrefix:          "sipreg:registration:",
		LeaseTTL:           10 * time.Second,
	}
}

// Path picks the config path: the flag, else CONFIG_PATH, else DefaultPath.
func Path(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("CONFIG_PATH"); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads and validates the file at path. Environment overrides: CONTROL_API_TOKEN.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, unwrapPathError(err))
	}
	cfg, err := Parse(filepath.Base(path), data)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	if tok := os.Getenv("CONTROL_API_TOKEN"); tok != "" {
		cfg.Spec.ControlToken = tok
	}
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
	p := &parser{name: name}
	cfg, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	cfg.Warnings = p.warnings
	return cfg, nil
}

type parser struct {
	name     string
	warnings []string
}

func (p *parser) errf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", p.name, field, fmt.Sprintf(format, args...))
}

func (p *parser) parse(data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty (want kind, apiVersion and spec)", p.name)
		}
		return nil, fmt.Errorf("%s: %s", p.name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the file must hold a mapping with kind, apiVersion and spec", p.name)
	}
	top := root.Content[0]
	cfg := &Config{Spec: defaults()}
	var spec *yaml.Node
	for k, v := range pairs(top) {
		switch k.Value {
		case "kind":
			cfg.Kind = v.Value
		case "apiVersion":
			cfg.APIVersion = v.Value
		case "metadata":
		case "spec":
			spec = v
		default:
			p.warnings = append(p.warnings, fmt.Sprintf("%s: line %d: unknown field %q ignored", p.name, k.Line, k.Value))
		}
	}
	if cfg.Kind != "Registry" && cfg.Kind != "registry" {
		if cfg.Kind == "" {
			return nil, p.errf("kind", "missing (want Registry)")
		}
		return nil, p.errf("kind", "%q is not Registry", cfg.Kind)
	}
	if cfg.APIVersion != "v2beta1" {
		if cfg.APIVersion == "" {
			return nil, p.errf("apiVersion", "missing (want v2beta1)")
		}
		return nil, p.errf("apiVersion", "%q is not supported (want v2beta1)", cfg.APIVersion)
	}
	if spec == nil {
		return nil, p.errf("spec", "missing")
	}
	if err := p.spec(spec, &cfg.Spec); err != nil {
		return nil, err
	}
	return cfg, nil
}

// pairs iterates over a mapping node's key/value pairs.
func pairs(n *yaml.Node) func(func(*yaml.Node, *yaml.Node) bool) {
	return func(yield func(*yaml.Node, *yaml.Node) bool) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

func (p *parser) spec(n *yaml.Node, s *Spec) error {
	if n.Kind != yaml.MappingNode {
		return p.errf("spec", "line %d: must be a mapping", n.Line)
	}
	seen := map[string]bool{}
	for k, v := range pairs(n) {
		field := "spec." + k.Value
		seen[k.Value] = true
		var err error
		switch k.Value {
		case "requesterAddr":
			s.RequesterAddr, err = p.str(field, v)
		case "apiAddr":
			s.APIAddr, err = p.str(field, v)
		case "registerInterval":
			s.RegisterInterval, err = p.duration(field, v, true)
		case "cache":
			err = p.cache(v, &s.Cache)
		case "methods":
			s.Methods, err = p.methods(field, v)
		case "edgePorts":
			s.EdgePorts, err = p.edgePorts(field, v)
		case "expires":
			s.Expires, err = p.integer(field, v, 1, math.MaxInt32)
		case "userAgent":
			s.UserAgent, err = p.userAgent(field, v)
		case "authMode":
			s.AuthMode, err = p.str(field, v)
			if err == nil && s.AuthMode != AuthEdgePort && s.AuthMode != AuthRegistry {
				err = p.errf(field, "%q is not %s or %s", s.AuthMode, AuthEdgePort, AuthRegistry)
			}
		case "gin":
			s.Gin, err = p.boolean(field, v)
		case "apiTimeout":
			s.APITimeout, err = p.duration(field, v, true)
		case "requestTimeout":
			s.RequestTimeout, err = p.duration(field, v, true)
		case "maxInFlight":
			s.MaxInFlight, err = p.integer(field, v, 1, 100000)
		case "registersPerSecond":
			s.RegistersPerSecond, err = p.float(field, v)
		case "startupSpread":
			s.StartupSpread, err = p.duration(field, v, false)
		case "startupCacheWait":
			s.StartupCacheWait, err = p.duration(field, v, false)
		case "backoffBase":
			s.BackoffBase, err = p.duration(field, v, true)
		case "backoffMax":
			s.BackoffMax, err = p.duration(field, v, true)
		case "rejectedRetry":
			s.RejectedRetry, err = p.duration(field, v, true)
		case "authFailedRetry":
			s.AuthFailedRetry, err = p.duration(field, v, true)
		case "unregisterOnShutdown":
			s.UnregisterOnStop, err = p.boolean(field, v)
		case "shutdownTimeout":
			s.ShutdownTimeout, err = p.duration(field, v, true)
		case "controlAddr":
			s.ControlAddr, err = p.listenAddr(field, v)
		case "controlToken":
			s.ControlToken, err = p.str(field, v)
		case "maxWatchStreams":
			s.MaxWatchStreams, err = p.integer(field, v, 1, math.MaxInt32)
		case "forceInterval":
			s.ForceInterval, err = p.duration(field, v, true)
		case "httpAddr":
			s.HTTPAddr, err = p.listenAddr(field, v)
		case "logFormat":
			s.LogFormat, err = p.str(field, v)
			if err == nil && s.LogFormat != "text" && s.LogFormat != "json" {
				err = p.errf(field, "%q is not text or json", s.LogFormat)
			}
		case "keyPrefix":
			s.KeyPrefix, err = p.str(field, v)
		case "clusterMode":
			s.ClusterMode, err = p.boolean(field, v)
		case "leaseTTL":
			s.LeaseTTL, err = p.duration(field, v, true)
			if err == nil && s.LeaseTTL < 2*time.Second {
				err = p.errf(field, "%s is too short (at least 2s)", s.LeaseTTL)
			}
		case "memoryLimit":
			s.MemoryLimit, err = p.bytes(field, v)
		case "replicaId":
			s.ReplicaID, err = p.str(field, v)
			if err == nil && strings.ContainsAny(s.ReplicaID, ": \t\r\n") {
				err = p.errf(field, "%q must not contain ':' or spaces", s.ReplicaID)
			}
		case "advertiseAddr":
			s.AdvertiseAddr, err = p.str(field, v)
			if err == nil && s.AdvertiseAddr != "" {
				if _, _, herr := splitHostPort(s.AdvertiseAddr); herr != nil {
					err = p.errf(field, "%q: %v", s.AdvertiseAddr, herr)
				}
			}
		default:
			p.warnings = append(p.warnings, fmt.Sprintf("%s: line %d: unknown field %s ignored", p.name, k.Line, field))
		}
		if err != nil {
			return err
		}
	}
	for _, req := range []string{"requesterAddr", "apiAddr", "edgePorts"} {
		if !seen[req] {
			return p.errf("spec."+req, "missing (required)")
		}
	}
	if err := p.hostPort("spec.requesterAddr", s.RequesterAddr); err != nil {
		return err
	}
	if err := p.hostPort("spec.apiAddr", s.APIAddr); err != nil {
		return err
	}
	if len(s.EdgePorts) == 0 {
		return p.errf("spec.edgePorts", "empty (at least one EdgePort is required)")
	}
	if s.BackoffMax < s.BackoffBase {
		return p.errf("spec.backoffMax", "%s is less than spec.backoffBase %s", s.BackoffMax, s.BackoffBase)
	}
	if s.ClusterMode && s.Cache.Provider != CacheRedis {
		return p.errf("spec.clusterMode", "needs spec.cache.provider redis (the replicas share one Redis)")
	}
	if s.RegistersPerSecond <= 0 {
		return p.errf("spec.registersPerSecond", "must be greater than 0")
	}
	if s.RequestTimeout <= 32*time.Second {
		p.warnings = append(p.warnings, fmt.Sprintf("%s: spec.requestTimeout: %s is not longer than Routr's 32 s SIP transaction timeout; answers may be cut off", p.name, s.RequestTimeout))
	}
	return nil
}

func (p *parser) scalar(field string, v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return p.errf(field, "line %d: must be a single value", v.Line)
	}
	return nil
}

func (p *parser) str(field string, v *yaml.Node) (string, error) {
	if err := p.scalar(field, v); err != nil {
		return "", err
	}
	if v.Tag == "!!null" {
		return "", nil
	}
	return strings.TrimSpace(v.Value), nil
}

func (p *parser) boolean(field string, v *yaml.Node) (bool, error) {
	if err := p.scalar(field, v); err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(v.Value)
	if err != nil {
		return false, p.errf(field, "line %d: %q is not true or false", v.Line, v.Value)
	}
	return b, nil
}

func (p *parser) integer(field string, v *yaml.Node, lo, hi int) (int, error) {
	if err := p.scalar(field, v); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v.Value)
	if err != nil {
		return 0, p.errf(field, "line %d: %q is not a whole number", v.Line, v.Value)
	}
	if n < lo || n > hi {
		return 0, p.errf(field, "line %d: %d is out of range [%d, %d]", v.Line, n, lo, hi)
	}
	return n, nil
}

func (p *parser) float(field string, v *yaml.Node) (float64, error) {
	if err := p.scalar(field, v); err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(v.Value, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, p.errf(field, "line %d: %q is not a number", v.Line, v.Value)
	}
	return f, nil
}

// duration accepts a number of seconds (Routr's form: 20) or a Go duration ("60s", "1m30s").
func (p *parser) duration(field string, v *yaml.Node, positive bool) (time.Duration, error) {
	if err := p.scalar(field, v); err != nil {
		return 0, err
	}
	s := strings.TrimSpace(v.Value)
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs > float64(math.MaxInt64/int64(time.Second)) {
			return 0, p.errf(field, "line %d: %q is out of range", v.Line, s)
		}
		d = time.Duration(secs * float64(time.Second))
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, p.errf(field, "line %d: %q is not a number of seconds or a duration such as 60s", v.Line, s)
		}
	}
	if positive && d <= 0 {
		return 0, p.errf(field, "line %d: %q must be greater than zero", v.Line, s)
	}
	if d < 0 {
		return 0, p.errf(field, "line %d: %q must not be negative", v.Line, s)
	}
	return d, nil
}

// bytes reads a size: a number of bytes or a number with KiB, MiB, GiB (or KB, MB, GB).
func (p *parser) bytes(field string, v *yaml.Node) (int64, error) {
	if err := p.scalar(field, v); err != nil {
		return 0, err
	}
	str := strings.TrimSpace(v.Value)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := 1.0
	num := str
	for _, u := range units {
		if strings.HasSuffix(str, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f*mult > math.MaxInt64/2 {
		return 0, p.errf(field, "line %d: %q is not a size such as 300MiB", v.Line, str)
	}
	return int64(f * mult), nil
}

func (p *parser) methods(field string, v *yaml.Node) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(field, "line %d: must be a list of SIP methods", v.Line)
	}
	var out []string
	seen := map[string]bool{}
	for i, m := range v.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, err := p.str(f, m)
		if err != nil {
			return nil, err
		}
		// The grammar is checked before upper-casing: some non-ASCII letters upper-case
		// to ASCII ones (ſ to S).
		if !isToken(s) {
			return nil, p.errf(f, "line %d: %q is not a SIP method (an RFC 3261 token: letters, digits and -.!%%*_+`'~)", m.Line, m.Value)
		}
		s = strings.ToUpper(s)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// userAgent reads a User-Agent value: it goes on the SIP wire as is, so it must be
// TEXT-UTF8 (RFC 3261 §25.1): valid UTF-8 without control characters, tab aside, and
// not empty once trimmed.
func (p *parser) userAgent(field string, v *yaml.Node) (string, error) {
	s, err := p.str(field, v)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", p.errf(field, "line %d: empty (leave it out for the default)", v.Line)
	}
	if err := textUTF8(s); err != nil {
		return "", p.errf(field, "line %d: %q: %v", v.Line, s, err)
	}
	return s, nil
}

// textUTF8 checks RFC 3261's TEXT-UTF8 (with its linear white space): valid UTF-8 and no
// control character (C0, DEL, C1) other than a tab.
func textUTF8(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r != '\t' && unicode.IsControl(r) {
			return fmt.Errorf("holds the control character %U (a SIP header value allows none but tab)", r)
		}
	}
	return nil
}

// isToken reports whether s is an RFC 3261 token:
// 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~").
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlphaNum(c) && !strings.ContainsRune("-.!%*_+`'~", rune(c)) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool    { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlphaNum(c byte) bool { return isAlpha(c) || '0' <= c && c <= '9' }

// sipHost checks the host of addr (host, as net.SplitHostPort returned it) against
// RFC 3261's host rule: a hostname, an IPv4 address, or an IPv6 address in brackets.
func sipHost(addr, host string) error {
	if strings.HasPrefix(addr, "[") {
		if strings.Contains(host, ":") && net.ParseIP(host) != nil {
			return nil
		}
		return fmt.Errorf("[%s] is not an IPv6 address", host)
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		return nil
	}
	if isHostname(host) {
		return nil
	}
	return fmt.Errorf("host %q is not a hostname, an IPv4 address or an [IPv6] address", host)
}

// isHostname checks RFC 3261's hostname: *( domainlabel "." ) toplabel [ "." ], where a
// label is letters, digits and inner hyphens, and the top label starts with a letter.
func isHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return false
	}
	labels := strings.Split(h, ".")
	for i, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for j := 0; j < len(l); j++ {
			if !isAlphaNum(l[j]) && l[j] != '-' {
				return false
			}
		}
		if i == len(labels)-1 && !isAlpha(l[0]) {
			return false
		}
	}
	return true
}

func (p *parser) edgePorts(field string, v *yaml.Node) ([]EdgePort, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(field, "line %d: must be a list of {address, region}", v.Line)
	}
	var out []EdgePort
	for i, n := range v.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if n.Kind != yaml.MappingNode {
			return nil, p.errf(f, "line %d: must be a mapping with address and region", n.Line)
		}
		var ep EdgePort
		for k, val := range pairs(n) {
			var err error
			switch k.Value {
			case "address":
				ep.Address, err = p.str(f+".address", val)
			case "region":
				ep.Region, err = p.str(f+".region", val)
			default:
				p.warnings = append(p.warnings, fmt.Sprintf("%s: line %d: unknown field %s.%s ignored", p.name, k.Line, f, k.Value))
			}
			if err != nil {
				return nil, err
			}
		}
		if ep.Address == "" {
			return nil, p.errf(f+".address", "missing")
		}
		host, port, err := splitHostPort(ep.Address)
		if err != nil {
			return nil, p.errf(f+".address", "%q: %v", ep.Address, err)
		}
		if err := sipHost(ep.Address, host); err != nil {
			return nil, p.errf(f+".address", "%q: %v", ep.Address, err)
		}
		ep.Host, ep.Port = host, port
		out = append(out, ep)
	}
	return out, nil
}

func (p *parser) hostPort(field, addr string) error {
	if addr == "" {
		return p.errf(field, "missing (required)")
	}
	if _, _, err := splitHostPort(addr); err != nil {
		return p.errf(field, "%q: %v", addr, err)
	}
	return nil
}

// listenAddr accepts host:port or :port.
func (p *parser) listenAddr(field string, v *yaml.Node) (string, error) {
	s, err := p.str(field, v)
	if err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", p.errf(field, "%q: want host:port or :port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", p.errf(field, "%q: bad port", s)
	}
	return s, nil
}

// splitHostPort requires a host and a port in 1..65535.
func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return "", 0, errors.New("missing port (want host:port)")
		}
		return "", 0, errors.New("want host:port")
	}
	if host == "" {
		return "", 0, errors.New("missing host (want host:port)")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q (want 1-65535)", port)
	}
	return host, n, nil
}

func (p *parser) cache(v *yaml.Node, c *Cache) error {
	if v.Kind != yaml.MappingNode {
		return p.errf("spec.cache", "line %d: must be a mapping with provider and parameters", v.Line)
	}
	var params string
	hasParams := false
	c.Provider = "" // the default (memory) applies only when cache is absent; Routr requires provider
	for k, val := range pairs(v) {
		var err error
		switch k.Value {
		case "provider":
			c.Provider, err = p.str("spec.cache.provider", val)
			if err == nil && c.Provider != CacheMemory && c.Provider != CacheRedis {
				err = p.errf("spec.cache.provider", "%q is not memory or redis", c.Provider)
			}
		case "parameters":
			params, err = p.str("spec.cache.parameters", val)
			hasParams = true
		default:
			p.warnings = append(p.warnings, fmt.Sprintf("%s: line %d: unknown field spec.cache.%s ignored", p.name, k.Line, k.Value))
		}
		if err != nil {
			return err
		}
	}
	if c.Provider == "" {
		return p.errf("spec.cache.provider", "missing (memory or redis)")
	}
	if hasParams {
		r, err := ParseRedisParams(params)
		if err != nil {
			return p.errf("spec.cache.parameters", "%v", err)
		}
		c.Redis = r
	}
	return nil
}

// ParseRedisParams reads Routr's "host=..,port=..,username=..,password=..,secure=.."
// string. Extensions: addrs=h1:p1;h2:p2 (Cluster, or Sentinel with masterName=...).
// Errors never quote a password.
func ParseRedisParams(s string) (RedisParams, error) {
	r := RedisParams{Host: "localhost", Port: 6379}
	if strings.TrimSpace(s) == "" {
		return r, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok {
			if seen["password"] {
				// Likely the rest of a password that holds a comma: quote nothing.
				return r, errors.New("a parameter after password is not key=value (does the password hold a ','?)")
			}
			return r, fmt.Errorf("%q is not key=value", redactParam(key, part))
		}
		val = strings.TrimSpace(val)
		if seen[key] {
			return r, fmt.Errorf("%s given twice", key)
		}
		seen[key] = true
		switch key {
		case "host":
			if val == "" {
				return r, errors.New("host is empty")
			}
			r.Host = val
		case "port":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 65535 {
				return r, fmt.Errorf("port %q is not a port number (1-65535)", val)
			}
			r.Port = n
		case "username":
			r.Username = val
		case "password":
			r.Password = val
		case "secure":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return r, fmt.Errorf("secure %q is not true or false", val)
			}
			r.Secure = b
		case "addrs":
			for _, a := range strings.Split(val, ";") {
				if _, _, err := splitHostPort(a); err != nil {
					return r, fmt.Errorf("addrs %q: %v", a, err)
				}
				r.Addrs = append(r.Addrs, a)
			}
		case "masterName":
			r.MasterName = val
		default:
			if seen["password"] {
				return r, errors.New("unknown parameter after password (does the password hold a ','?)")
			}
			return r, fmt.Errorf("unknown parameter %q (known: host, port, username, password, secure, addrs, masterName)", key)
		}
	}
	if r.MasterName != "" && len(r.Addrs) == 0 {
		return r, errors.New("masterName needs addrs (the Sentinel addresses)")
	}
	return r, nil
}

// redactParam shows a malformed parameter unless it may be a password.
func redactParam(key, part string) string {
	if strings.HasPrefix(strings.ToLower(key), "pass") {
		return "password..."
	}
	return part
}
