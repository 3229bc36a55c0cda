package sipmsg

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The pieces of RFC 3261 §25.1 that the registry writes into a REGISTER: the user part
// and the host of a SIP URI, tokens, and header text. Everything that reaches Routr's
// Requester goes through these, because the Requester copies every string into the SIP
// message as it is (a CR or LF becomes a header line of its own, a NUL is written raw).

// ErrInvalidRequest marks a request (or the Register it is built from) that must not be
// sent: Check and BuildChecked wrap it.
var ErrInvalidRequest = errors.New("invalid SIP request")

// isCTL reports whether c is an ASCII control character (C0 or DEL), NUL, CR and LF
// included.
func isCTL(c byte) bool { return c < 0x20 || c == 0x7f }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// isUserChar reports whether c may stand unescaped in the user part of a SIP URI:
// unreserved (alphanum / mark) or user-unreserved.
func isUserChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0
}

// isPasswordChar reports whether c may stand unescaped in the password of a SIP URI.
func isPasswordChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-_.!~*'()&=+$,", c) >= 0
}

// isTokenChar reports whether c is an RFC 3261 token character.
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// isWordChar reports whether c is an RFC 3261 word character (Call-ID).
func isWordChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-.!%*_+`'~()<>:\\\"/[]?{}", c) >= 0
}

// controlError describes the first ASCII control character of s, or is nil.
func controlError(s string) error {
	for i := 0; i < len(s); i++ {
		if isCTL(s[i]) {
			return fmt.Errorf("control character U+%04X", s[i])
		}
	}
	return nil
}

// EscapeUser returns s as the user part of a SIP URI: every byte outside the RFC 3261
// `user` grammar (unreserved / escaped / "&" / "=" / "+" / "$" / "," / ";" / "?" / "/") is
// %XX-escaped (for example '@', ' ', '<', '>', '"', ':', '%' not followed by two hex
// digits, and each byte of a non-ASCII character), and so is a '/' that starts the user
// ("sip://" would read as a hierarchical URI); an already valid %XX is kept, so
// EscapeUser is idempotent. A control character (any byte below 0x20, NUL included, and
// DEL) or invalid UTF-8 is an error: such a user is refused, never escaped. "" gives "".
func EscapeUser(s string) (string, error) {
	if err := controlError(s); err != nil {
		return "", err
	}
	if !utf8.ValidString(s) {
		return "", errors.New("invalid UTF-8")
	}
	return escapeUser(s), nil
}

// escapeUser escapes every byte of s outside the user grammar, control characters and
// invalid UTF-8 included (Build's last line of defence: it never fails), and a '/' that
// starts it: "sip://..." reads as a hierarchical URI to many parsers (sipgo among them).
func escapeUser(s string) string {
	if strings.HasPrefix(s, "/") {
		return "%2F" + escapeOutside(s[1:], isUserChar)
	}
	return escapeOutside(s, isUserChar)
}

// escapeOutside %XX-escapes every byte of s for which ok is false, keeping valid %XX.
func escapeOutside(s string, ok func(byte) bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) && !validEscape(s, i) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case ok(c):
			b.WriteByte(c)
		case validEscape(s, i):
			b.WriteString(s[i : i+3])
			i += 2
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// validEscape reports whether s[i:] starts with '%' and two hex digits.
func validEscape(s string, i int) bool {
	return s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2])
}

// isEscaped reports whether s is made of ok bytes and valid %XX escapes only.
func isEscaped(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		switch {
		case ok(s[i]):
		case validEscape(s, i):
			i += 2
		default:
			return false
		}
	}
	return true
}

// CheckToken checks a non-empty RFC 3261 token (a method name, a header parameter):
// 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~").
func CheckToken(s string) error { return checkToken(s) }

// CheckHeaderText checks text that ends in a header value (RFC 3261 TEXT-UTF8 with its
// linear white space): valid UTF-8, no control character but a tab.
func CheckHeaderText(s string) error { return checkText(s, ruleText) }

// checkToken checks a non-empty RFC 3261 token.
func checkToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return fmt.Errorf("%q is not a token", s)
		}
	}
	return nil
}

// checkCallID checks callid = word [ "@" word ].
func checkCallID(s string) error {
	w1, w2, two := strings.Cut(s, "@")
	ok := func(w string) bool {
		if w == "" {
			return false
		}
		for i := 0; i < len(w); i++ {
			if !isWordChar(w[i]) {
				return false
			}
		}
		return true
	}
	if !ok(w1) || two && !ok(w2) {
		return fmt.Errorf("%q is not a Call-ID (word [\"@\" word])", s)
	}
	return nil
}

// textRule says which characters a string field may hold.
type textRule int

const (
	// ruleLine: valid UTF-8 without control characters (C0, DEL, C1), not even HTAB.
	ruleLine textRule = iota
	// ruleText: as ruleLine, but HTAB is allowed (header text, where LWS is).
	ruleText
	// ruleQuoted: as ruleText, and neither '"' nor '\' (a value that Routr writes
	// between quotes without escaping: it must be valid quoted-string content as is).
	ruleQuoted
)

// checkText reports the first character of s the rule forbids.
func checkText(s string, rule textRule) error {
	i := 0
	// The usual value is printable ASCII: pass over it byte by byte; the first other
	// byte goes to the rune by rune check.
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || isCTL(c) || rule == ruleQuoted && (c == '"' || c == '\\') {
			if c == '\t' && rule != ruleLine {
				continue
			}
			break
		}
	}
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if bad, why := badRune(r, n, rule); bad {
			return errors.New(why)
		}
		i += n
	}
	return nil
}

// badRune reports whether the rune r (n bytes; RuneError of 1 byte is invalid UTF-8) is
// forbidden by rule, and why.
func badRune(r rune, n int, rule textRule) (bool, string) {
	switch {
	case r == utf8.RuneError && n == 1:
		return true, "invalid UTF-8"
	case r == '\t' && rule != ruleLine:
		return false, ""
	case unicode.IsControl(r):
		return true, fmt.Sprintf("control character U+%04X", r)
	case rule == ruleQuoted && (r == '"' || r == '\\'):
		return true, fmt.Sprintf("%q cannot be quoted as is", r)
	}
	return false, ""
}

// scrubText %XX-escapes every character of s that rule forbids (each of its bytes), so
// that the result holds no control character and is valid UTF-8.
func scrubText(s string, rule textRule) string {
	if checkText(s, rule) == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if bad, _ := badRune(r, n, rule); bad {
			for j := i; j < i+n; j++ {
				fmt.Fprintf(&b, "%%%02X", s[j])
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
