package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"sipreg.dev/services/registry/internal/sipmsg"
)

// What goes on the SIP wire follows RFC 3261's grammar, checked by the same rules the
// REGISTER is built with (sipmsg): methods are tokens, the User-Agent is TEXT-UTF8,
// EdgePort hosts are hosts.

// textUTF8 checks RFC 3261's TEXT-UTF8 (with its linear white space): valid UTF-8 and no
// control character (C0, DEL, C1) other than a tab.
func textUTF8(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if err := sipmsg.CheckHeaderText(s); err != nil {
		return fmt.Errorf("holds the %w (a SIP header value allows none but tab)", err)
	}
	return nil
}

// isToken reports whether s is an RFC 3261 token.
func isToken(s string) bool { return sipmsg.CheckToken(s) == nil }

// sipHost checks the host of addr (host, as net.SplitHostPort returned it) against
// RFC 3261's host rule: a hostname, an IPv4 address, or an IPv6 address in brackets.
func sipHost(addr, host string) error {
	if strings.HasPrefix(addr, "[") {
		if _, err := sipmsg.ParseHost("[" + host + "]"); err != nil {
			return fmt.Errorf("[%s] is not an IPv6 address", host)
		}
		return nil
	}
	if _, err := sipmsg.ParseHost(host); err != nil || strings.Contains(host, ":") {
		return fmt.Errorf("host %q is not a hostname, an IPv4 address or an [IPv6] address", host)
	}
	return nil
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
