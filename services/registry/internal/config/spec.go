package config

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// specFile is spec as the file gives it; resolve turns it into a Spec.
type specFile struct {
	unknownKeys
	RequesterAddr      text      `yaml:"requesterAddr"`
	APIAddr            text      `yaml:"apiAddr"`
	RegisterInterval   duration  `yaml:"registerInterval"`
	Cache              cacheFile `yaml:"cache"`
	Methods            methods   `yaml:"methods"`
	EdgePorts          edgePorts `yaml:"edgePorts"`
	Expires            whole     `yaml:"expires"`
	UserAgent          text      `yaml:"userAgent"`
	AuthMode           text      `yaml:"authMode"`
	Gin                flag      `yaml:"gin"`
	APITimeout         duration  `yaml:"apiTimeout"`
	RequestTimeout     duration  `yaml:"requestTimeout"`
	MaxInFlight        whole     `yaml:"maxInFlight"`
	RegistersPerSecond number    `yaml:"registersPerSecond"`
	StartupSpread      duration  `yaml:"startupSpread"`
	StartupCacheWait   duration  `yaml:"startupCacheWait"`
	BackoffBase        duration  `yaml:"backoffBase"`
	BackoffMax         duration  `yaml:"backoffMax"`
	RejectedRetry      duration  `yaml:"rejectedRetry"`
	AuthFailedRetry    duration  `yaml:"authFailedRetry"`
	UnregisterOnStop   flag      `yaml:"unregisterOnShutdown"`
	ShutdownTimeout    duration  `yaml:"shutdownTimeout"`
	ControlAddr        text      `yaml:"controlAddr"`
	ControlToken       text      `yaml:"controlToken"`
	MaxWatchStreams    whole     `yaml:"maxWatchStreams"`
	ForceInterval      duration  `yaml:"forceInterval"`
	HTTPAddr           text      `yaml:"httpAddr"`
	LogFormat          text      `yaml:"logFormat"`
	KeyPrefix          text      `yaml:"keyPrefix"`
	ClusterMode        flag      `yaml:"clusterMode"`
	LeaseTTL           duration  `yaml:"leaseTTL"`
	MemoryLimit        size      `yaml:"memoryLimit"`
	ReplicaID          text      `yaml:"replicaId"`
	AdvertiseAddr      text      `yaml:"advertiseAddr"`
}

// UnmarshalYAML reads spec's mapping.
func (s *specFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return atLine(n, "must be a mapping")
	}
	w, err := decodeFields(n, s)
	s.warnings = append(s.warnings, w...)
	return err
}

// cacheFile is spec.cache. Routr requires its provider: the default (memory) applies
// only when cache is absent.
type cacheFile struct {
	unknownKeys
	line       int
	Provider   text        `yaml:"provider"`
	Parameters redisParams `yaml:"parameters"`
}

// UnmarshalYAML reads cache's mapping.
func (c *cacheFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return atLine(n, "must be a mapping with provider and parameters")
	}
	c.line, c.Provider = n.Line, text{} // each cache mapping names its provider
	w, err := decodeFields(n, c)
	c.warnings = append(c.warnings, w...)
	return err
}

// resolve lays the file's values over the defaults and checks them: first each value
// against its field's rules, then what must be given and what ties fields together. It
// is the one place that knows the defaults and the rules. The notes are warnings.
func (f *specFile) resolve() (Spec, []problem, error) {
	s := Spec{
		RegisterInterval: 60 * time.Second,
		Cache:            Cache{Provider: CacheMemory, Redis: RedisParams{Host: "localhost", Port: 6379}},
		Expires:          600,
		UserAgent:        "Routr Registry (sipreg)",
		AuthMode:         AuthEdgePort,
		Gin:              true,
		APITimeout:       30 * time.Second,
		RequestTimeout:   40 * time.Second,
		MaxInFlight:      64,
		StartupCacheWait: 30 * time.Second,
		BackoffBase:      30 * time.Second,
		BackoffMax:       30 * time.Minute,
		RejectedRetry:    30 * time.Minute,
		AuthFailedRetry:  30 * time.Minute,
		ShutdownTimeout:  10 * time.Second,
		ControlAddr:      ":51910",
		MaxWatchStreams:  256,
		ForceInterval:    time.Second,
		HTTPAddr:         ":8080",
		LogFormat:        "text",
		KeyPrefix:        "sipreg:registration:",
		LeaseTTL:         10 * time.Second,
	}
	f.RequesterAddr.to(&s.RequesterAddr)
	f.APIAddr.to(&s.APIAddr)
	f.RegisterInterval.to(&s.RegisterInterval)
	if f.Cache.line > 0 {
		s.Cache.Provider = f.Cache.Provider.val
		f.Cache.Parameters.to(&s.Cache.Redis)
	}
	f.Methods.to(&s.Methods)
	f.EdgePorts.to(&s.EdgePorts)
	f.Expires.to(&s.Expires)
	f.UserAgent.to(&s.UserAgent)
	f.AuthMode.to(&s.AuthMode)
	f.Gin.to(&s.Gin)
	f.APITimeout.to(&s.APITimeout)
	f.RequestTimeout.to(&s.RequestTimeout)
	f.MaxInFlight.to(&s.MaxInFlight)
	f.RegistersPerSecond.to(&s.RegistersPerSecond)
	f.StartupSpread.to(&s.StartupSpread)
	s.StartupSpreadAuto = !f.StartupSpread.set()
	f.StartupCacheWait.to(&s.StartupCacheWait)
	f.BackoffBase.to(&s.BackoffBase)
	f.BackoffMax.to(&s.BackoffMax)
	f.RejectedRetry.to(&s.RejectedRetry)
	f.AuthFailedRetry.to(&s.AuthFailedRetry)
	f.UnregisterOnStop.to(&s.UnregisterOnStop)
	f.ShutdownTimeout.to(&s.ShutdownTimeout)
	f.ControlAddr.to(&s.ControlAddr)
	f.ControlToken.to(&s.ControlToken)
	f.MaxWatchStreams.to(&s.MaxWatchStreams)
	f.ForceInterval.to(&s.ForceInterval)
	f.HTTPAddr.to(&s.HTTPAddr)
	f.LogFormat.to(&s.LogFormat)
	f.KeyPrefix.to(&s.KeyPrefix)
	f.ClusterMode.to(&s.ClusterMode)
	f.LeaseTTL.to(&s.LeaseTTL)
	f.MemoryLimit.to(&s.MemoryLimit)
	f.ReplicaID.to(&s.ReplicaID)
	f.AdvertiseAddr.to(&s.AdvertiseAddr)

	for _, err := range []error{
		positive("spec.registerInterval", f.RegisterInterval),
		when(f.Cache.line > 0 && !f.Cache.Provider.set(), "spec.cache.provider", "missing (memory or redis)"),
		oneOf("spec.cache.provider", f.Cache.Provider, CacheMemory, CacheRedis),
		inRange("spec.expires", f.Expires, 1, math.MaxInt32),
		userAgent("spec.userAgent", f.UserAgent),
		oneOf("spec.authMode", f.AuthMode, AuthEdgePort, AuthRegistry),
		positive("spec.apiTimeout", f.APITimeout),
		positive("spec.requestTimeout", f.RequestTimeout),
		inRange("spec.maxInFlight", f.MaxInFlight, 1, 100000),
		nonNegativeNumber("spec.registersPerSecond", f.RegistersPerSecond),
		nonNegative("spec.startupSpread", f.StartupSpread),
		nonNegative("spec.startupCacheWait", f.StartupCacheWait),
		positive("spec.backoffBase", f.BackoffBase),
		positive("spec.backoffMax", f.BackoffMax),
		positive("spec.rejectedRetry", f.RejectedRetry),
		positive("spec.authFailedRetry", f.AuthFailedRetry),
		positive("spec.shutdownTimeout", f.ShutdownTimeout),
		listenAddr("spec.controlAddr", f.ControlAddr),
		inRange("spec.maxWatchStreams", f.MaxWatchStreams, 1, math.MaxInt32),
		positive("spec.forceInterval", f.ForceInterval),
		listenAddr("spec.httpAddr", f.HTTPAddr),
		oneOf("spec.logFormat", f.LogFormat, "text", "json"),
		positive("spec.leaseTTL", f.LeaseTTL),
		when(s.LeaseTTL < 2*time.Second, "spec.leaseTTL", "%s is too short (at least 2s)", s.LeaseTTL),
		when(strings.ContainsAny(s.ReplicaID, ": \t\r\n"), "spec.replicaId", "%q must not contain ':' or spaces", s.ReplicaID),
		optionalHostPort("spec.advertiseAddr", s.AdvertiseAddr),

		when(!f.RequesterAddr.set(), "spec.requesterAddr", "missing (required)"),
		when(!f.APIAddr.set(), "spec.apiAddr", "missing (required)"),
		when(!f.EdgePorts.set(), "spec.edgePorts", "missing (required)"),
		hostPort("spec.requesterAddr", s.RequesterAddr),
		hostPort("spec.apiAddr", s.APIAddr),
		when(len(s.EdgePorts) == 0, "spec.edgePorts", "empty (at least one EdgePort is required)"),
		when(s.BackoffMax < s.BackoffBase, "spec.backoffMax", "%s is less than spec.backoffBase %s", s.BackoffMax, s.BackoffBase),
		when(s.ClusterMode && s.Cache.Provider != CacheRedis, "spec.clusterMode", "needs spec.cache.provider redis (the replicas share one Redis)"),
	} {
		if err != nil {
			return Spec{}, nil, err
		}
	}
	var notes []problem
	if s.RequestTimeout <= 32*time.Second {
		notes = append(notes, problem{path: []string{"spec.requestTimeout"},
			msg: fmt.Sprintf("%s is not longer than Routr's 32 s SIP transaction timeout; answers may be cut off", s.RequestTimeout)})
	}
	return s, notes, nil
}

// The rules below pass a value the file does not give.

// when is an error about field if bad.
func when(bad bool, field, format string, args ...any) error {
	if !bad {
		return nil
	}
	return &problem{path: []string{field}, msg: fmt.Sprintf(format, args...)}
}

// fieldAt is an error about field, at line.
func fieldAt(field string, line int, format string, args ...any) error {
	return &problem{path: []string{field}, line: line, msg: fmt.Sprintf(format, args...)}
}

func positive(field string, d duration) error {
	if d.set() && d.val <= 0 {
		return fieldAt(field, d.line, "%q must be greater than zero", d.src)
	}
	return nil
}

func nonNegative(field string, d duration) error {
	if d.set() && d.val < 0 {
		return fieldAt(field, d.line, "%q must not be negative", d.src)
	}
	return nil
}

func nonNegativeNumber(field string, f number) error {
	if f.set() && f.val < 0 {
		return fieldAt(field, f.line, "%g must not be negative (0: no cap)", f.val)
	}
	return nil
}

func inRange(field string, w whole, lo, hi int) error {
	if w.set() && (w.val < lo || w.val > hi) {
		return fieldAt(field, w.line, "%d is out of range [%d, %d]", w.val, lo, hi)
	}
	return nil
}

func oneOf(field string, t text, a, b string) error {
	if t.set() && t.val != a && t.val != b {
		return fieldAt(field, 0, "%q is not %s or %s", t.val, a, b)
	}
	return nil
}

// userAgent goes on the SIP wire as is: it must be TEXT-UTF8, and not empty.
func userAgent(field string, t text) error {
	if !t.set() {
		return nil
	}
	if t.val == "" {
		return fieldAt(field, t.line, "empty (leave it out for the default)")
	}
	if err := textUTF8(t.val); err != nil {
		return fieldAt(field, t.line, "%q: %v", t.val, err)
	}
	return nil
}

// listenAddr accepts host:port or :port.
func listenAddr(field string, t text) error {
	if !t.set() {
		return nil
	}
	_, port, err := net.SplitHostPort(t.val)
	if err != nil {
		return fieldAt(field, 0, "%q: want host:port or :port", t.val)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fieldAt(field, 0, "%q: bad port", t.val)
	}
	return nil
}

// hostPort requires a host and a port in 1..65535.
func hostPort(field, addr string) error {
	if addr == "" {
		return fieldAt(field, 0, "missing (required)")
	}
	if _, _, err := splitHostPort(addr); err != nil {
		return fieldAt(field, 0, "%q: %v", addr, err)
	}
	return nil
}

// optionalHostPort is hostPort for a field that may be empty.
func optionalHostPort(field, addr string) error {
	if addr == "" {
		return nil
	}
	return hostPort(field, addr)
}
