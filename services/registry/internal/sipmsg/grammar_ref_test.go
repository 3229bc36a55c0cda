package sipmsg

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The implementations these replaced (they allocated), kept as the reference the
// faster ones must agree with.

func refIsIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

func refIsIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == ""
}

func refIsHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return false
	}
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if l == "" || !isAlnum(l[0]) || !isAlnum(l[len(l)-1]) {
			return false
		}
		for j := 0; j < len(l); j++ {
			if !isAlnum(l[j]) && l[j] != '-' {
				return false
			}
		}
		if i == len(labels)-1 && !isAlpha(l[0]) {
			return false
		}
	}
	return true
}

func refIsPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// FuzzGrammarReference compares the host and port checks with their reference.
func FuzzGrammarReference(f *testing.F) {
	for _, s := range []string{
		"", ".", "..", "a", "a.", "a..", "a..b", ".a", "sip.example.com", "sip.example.com.",
		"1.2.3.4", "1.2.3.4.", "01.2.3.4", "1.2.3", "256.1.1.1", "1a.example", "example.1a",
		"-a.com", "a-.com", "::1", "[::1]", "2001:db8::1", "fe80::1%eth0", "::ffff:1.2.3.4",
		"5060", "0", "05060", "+5060", "-1", "65535", "65536", "99999", "123456", "1_0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isIPv4(s), refIsIPv4(s); got != want {
			t.Fatalf("isIPv4(%q) = %v, want %v", s, got, want)
		}
		if got, want := isIPv6(s), refIsIPv6(s); got != want {
			t.Fatalf("isIPv6(%q) = %v, want %v", s, got, want)
		}
		if got, want := isHostname(s), refIsHostname(s); got != want {
			t.Fatalf("isHostname(%q) = %v, want %v", s, got, want)
		}
		if got, want := isPort(s), refIsPort(s); got != want {
			t.Fatalf("isPort(%q) = %v, want %v", s, got, want)
		}
	})
}

func refCheckText(s string, rule textRule) error {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if bad, why := badRune(r, n, rule); bad {
			return errors.New(why)
		}
		i += n
	}
	return nil
}

// FuzzCheckTextReference compares checkText (an ASCII fast path) with its reference.
func FuzzCheckTextReference(f *testing.F) {
	for _, s := range []string{"", "Routr Registry (sipreg)", "a\tb", "a\"b", "a\\b", "a\r\nb",
		"\x00", "\x7f", "é", "\u0085", "\xff", "ok\xc3", "x\u200by"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, rule := range []textRule{ruleLine, ruleText, ruleQuoted} {
			got, want := checkText(s, rule), refCheckText(s, rule)
			if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
				t.Fatalf("checkText(%q, %d) = %v, want %v", s, rule, got, want)
			}
		}
	})
}
