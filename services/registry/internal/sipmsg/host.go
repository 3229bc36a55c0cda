package sipmsg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The host of a SIP URI (RFC 3261 §25.1 `host`) and the Requester's target.

// ParseHost checks a registrar host against the RFC 3261 `host` grammar and returns it in
// the form the registry keeps: a hostname (labels of alphanumerics and '-', the last one
// starting with a letter, an optional trailing dot) or an IPv4 address as given, an IPv6
// address without its brackets ("[::1]" and "::1" both give "::1"). Anything else (empty,
// a control character, a space, '@', '/', a port, an IPv6 zone, ...) is an error that
// describes the problem (quoting the value in Go syntax, safe to log).
func ParseHost(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	if err := controlError(s); err != nil {
		return "", err
	}
	if !utf8.ValidString(s) {
		return "", errors.New("invalid UTF-8")
	}
	inner, bracketed := s, false
	if s[0] == '[' {
		if len(s) < 2 || s[len(s)-1] != ']' {
			return "", fmt.Errorf("%q: unterminated IPv6 reference", s)
		}
		inner, bracketed = s[1:len(s)-1], true
	}
	if strings.Contains(inner, ":") || bracketed {
		if a, err := netip.ParseAddr(inner); err == nil && a.Is6() && a.Zone() == "" {
			return inner, nil
		}
		return "", fmt.Errorf("%q is not an IPv6 address", s)
	}
	if isIPv4(inner) || isHostname(inner) {
		return inner, nil
	}
	return "", fmt.Errorf("%q is not a hostname, IPv4 or IPv6 address", s)
}

// isIPv4 reports whether s is a dotted-quad IPv4 address.
func isIPv4(s string) bool {
	// Only digits and dots can make one: a hostname is refused without parsing it (a
	// failed netip.ParseAddr allocates its error).
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && s[i] != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// isHostname reports whether s matches RFC 3261 `hostname`.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return false
	}
	for s != "" {
		l, rest, more := strings.Cut(s, ".")
		if l == "" || !isAlnum(l[0]) || !isAlnum(l[len(l)-1]) {
			return false
		}
		for j := 0; j < len(l); j++ {
			if !isAlnum(l[j]) && l[j] != '-' {
				return false
			}
		}
		if !more && !isAlpha(l[0]) {
			return false // toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
		}
		if more && rest == "" {
			return false // an empty label ("a..b" or a dot left after the trailing one)
		}
		s = rest
	}
	return true
}

// isIPv6 reports whether s (without brackets) is an IPv6 address.
func isIPv6(s string) bool {
	if strings.IndexByte(s, ':') < 0 {
		return false // not parsed: a failed netip.ParseAddr allocates its error
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == ""
}

// uriHost writes a host for a SIP URI: an IPv6 address (bare or bracketed) in brackets,
// anything else as it is.
func uriHost(h string) string {
	if inner := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"); isIPv6(inner) {
		return "[" + inner + "]"
	}
	return h
}

// bareHost is h without the brackets of an IPv6 reference (for net.JoinHostPort).
func bareHost(h string) string {
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' && isIPv6(h[1:len(h)-1]) {
		return h[1 : len(h)-1]
	}
	return h
}

// HostPort joins a host (IPv6 bare or bracketed) and a port (0 means 5060) as the
// Requester's target: "sip.example.com:5060", "10.0.0.1:5080", "[::1]:5060".
func HostPort(host string, port int) string {
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(bareHost(host), strconv.Itoa(port))
}

// checkURIHost checks the host of a SipURI as written: hostname, IPv4, or an IPv6
// reference in brackets.
func checkURIHost(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if strings.Contains(h, ":") && (h[0] != '[' || h[len(h)-1] != ']') {
		return fmt.Errorf("%q: an IPv6 address must be in brackets", h)
	}
	_, err := ParseHost(h)
	return err
}

// checkTarget checks the Requester's target: host ":" port, the host as in a URI.
func checkTarget(t string) error {
	h, p, err := net.SplitHostPort(t)
	if err != nil {
		return fmt.Errorf("%q is not host:port", t)
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	} else if strings.HasPrefix(t, "[") {
		return fmt.Errorf("%q: brackets around a host that is not an IPv6 address", t)
	}
	if err := checkURIHost(h); err != nil {
		return err
	}
	if !isPort(p) {
		return fmt.Errorf("%q: bad port", t)
	}
	return nil
}

// isPort reports whether p is a port 1..65535 written as strconv.Itoa writes it: digits
// only, no sign, no leading zero.
func isPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if !isDigit(p[i]) {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}
