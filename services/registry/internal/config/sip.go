package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What goes on the SIP wire follows RFC 3261's grammar: methods are tokens, the
// User-Agent is TEXT-UTF8, EdgePort hosts are hosts.

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
