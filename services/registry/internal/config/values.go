package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// text is a string setting.
type text struct{ value[string] }

// UnmarshalYAML reads a string.
func (t *text) UnmarshalYAML(n *yaml.Node) error {
	s, err := str(n)
	t.val, t.line = s, n.Line
	return err
}

// flag is true or false.
type flag struct{ value[bool] }

// UnmarshalYAML reads true or false (strconv.ParseBool).
func (f *flag) UnmarshalYAML(n *yaml.Node) error {
	if err := scalar(n); err != nil {
		return err
	}
	b, err := strconv.ParseBool(n.Value)
	if err != nil {
		return atLine(n, "%q is not true or false", n.Value)
	}
	f.val, f.line = b, n.Line
	return nil
}

// whole is a whole number.
type whole struct{ value[int] }

// UnmarshalYAML reads a whole number.
func (w *whole) UnmarshalYAML(n *yaml.Node) error {
	if err := scalar(n); err != nil {
		return err
	}
	i, err := strconv.Atoi(n.Value)
	if err != nil {
		return atLine(n, "%q is not a whole number", n.Value)
	}
	w.val, w.line = i, n.Line
	return nil
}

// number is a finite number.
type number struct{ value[float64] }

// UnmarshalYAML reads a finite number.
func (f *number) UnmarshalYAML(n *yaml.Node) error {
	if err := scalar(n); err != nil {
		return err
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return atLine(n, "%q is not a number", n.Value)
	}
	f.val, f.line = v, n.Line
	return nil
}

// duration is a number of seconds (Routr's form: registerInterval: 20) or a Go duration
// ("60s", "1m30s"). src is the text as written, for messages.
type duration struct {
	value[time.Duration]
	src string
}

// UnmarshalYAML reads seconds or a Go duration.
func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if err := scalar(n); err != nil {
		return err
	}
	s := strings.TrimSpace(n.Value)
	var v time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs > float64(math.MaxInt64/int64(time.Second)) {
			return atLine(n, "%q is out of range", s)
		}
		v = time.Duration(secs * float64(time.Second))
	} else if v, err = time.ParseDuration(s); err != nil {
		return atLine(n, "%q is not a number of seconds or a duration such as 60s", s)
	}
	d.val, d.line, d.src = v, n.Line, s
	return nil
}

// size is a number of bytes, or a number with KiB, MiB, GiB (or KB, MB, GB, B).
type size struct{ value[int64] }

var sizeUnits = []struct {
	suffix string
	mult   float64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// UnmarshalYAML reads a size.
func (z *size) UnmarshalYAML(n *yaml.Node) error {
	if err := scalar(n); err != nil {
		return err
	}
	s := strings.TrimSpace(n.Value)
	num, mult := s, 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f*mult > math.MaxInt64/2 {
		return atLine(n, "%q is not a size such as 300MiB", s)
	}
	z.val, z.line = int64(f*mult), n.Line
	return nil
}

// methods is a list of SIP methods (RFC 3261 tokens), upper-cased, each once.
type methods struct{ value[[]string] }

// UnmarshalYAML reads a list of SIP methods.
func (m *methods) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return atLine(n, "must be a list of SIP methods")
	}
	m.val, m.line = nil, n.Line
	seen := map[string]bool{}
	for i, item := range n.Content {
		s, err := str(item)
		// The grammar is checked before upper-casing: some non-ASCII letters upper-case
		// to ASCII ones (ſ to S).
		if err == nil && !isToken(s) {
			err = atLine(item, "%q is not a SIP method (an RFC 3261 token: letters, digits and -.!%%*_+`'~)", item.Value)
		}
		if err != nil {
			return under(index(i), err)
		}
		if s = strings.ToUpper(s); !seen[s] {
			seen[s] = true
			m.val = append(m.val, s)
		}
	}
	return nil
}

// edgePorts is a list of EdgePorts.
type edgePorts struct {
	value[[]EdgePort]
	unknownKeys
}

// UnmarshalYAML reads a list of EdgePorts.
func (l *edgePorts) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return atLine(n, "must be a list of {address, region}")
	}
	l.val, l.line = nil, n.Line
	for i, item := range n.Content {
		var e edgePort
		ep, err := e.decode(item)
		if err != nil {
			return under(index(i), err)
		}
		for _, w := range e.takeWarnings() {
			l.warnings = append(l.warnings, w.under(index(i)))
		}
		l.val = append(l.val, ep)
	}
	return nil
}

// edgePort is one EdgePort: its address is a host:port, the host a hostname, an IPv4
// address or an [IPv6] address.
type edgePort struct {
	unknownKeys
	Address text `yaml:"address"`
	Region  text `yaml:"region"`
}

// decode reads one EdgePort and checks its address.
func (e *edgePort) decode(n *yaml.Node) (EdgePort, error) {
	if n.Kind != yaml.MappingNode {
		return EdgePort{}, atLine(n, "must be a mapping with address and region")
	}
	w, err := decodeFields(n, e)
	if err != nil {
		return EdgePort{}, err
	}
	e.warnings = w
	addr := e.Address.val
	if addr == "" {
		return EdgePort{}, &problem{path: []string{"address"}, msg: "missing"}
	}
	host, port, err := splitHostPort(addr)
	if err == nil {
		err = sipHost(addr, host)
	}
	if err != nil {
		return EdgePort{}, &problem{path: []string{"address"}, msg: fmt.Sprintf("%q: %v", addr, err)}
	}
	return EdgePort{Address: addr, Host: host, Port: port, Region: e.Region.val}, nil
}

// redisParams is Routr's cache.parameters string (see ParseRedisParams).
type redisParams struct{ value[RedisParams] }

// UnmarshalYAML reads the parameters string.
func (r *redisParams) UnmarshalYAML(n *yaml.Node) error {
	s, err := str(n)
	if err != nil {
		return err
	}
	p, err := ParseRedisParams(s)
	if err != nil {
		return &problem{msg: err.Error()}
	}
	r.val, r.line = p, n.Line
	return nil
}

// literal is a value as written, whatever it is (kind, apiVersion): a list or a mapping
// reads as empty.
type literal string

// UnmarshalYAML takes the value as written.
func (l *literal) UnmarshalYAML(n *yaml.Node) error {
	*l = literal(n.Value)
	return nil
}

// ignored is a value that is not read (metadata).
type ignored struct{}

// UnmarshalYAML reads nothing.
func (ignored) UnmarshalYAML(*yaml.Node) error { return nil }

// deferred keeps a value's node, to decode it later (spec, once kind and apiVersion are
// checked).
type deferred struct{ node *yaml.Node }

// UnmarshalYAML keeps the node.
func (d *deferred) UnmarshalYAML(n *yaml.Node) error {
	d.node = n
	return nil
}
