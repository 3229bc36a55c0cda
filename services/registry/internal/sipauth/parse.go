package sipauth

import (
	"fmt"
	"strings"
)

// item is one element of an auth header value (RFC 3261 §25.1, RFC 7235 §2.1): either the
// scheme that starts a challenge or credentials (scheme set), or one of its parameters
// (key set). start and end delimit the raw value in the input, quotes included.
type item struct {
	scheme     string
	key, value string
	start, end int
}

// scan splits an auth header value into items. It accepts several challenges in one value
// ("Digest realm=.., nonce=.., Digest realm=.."), names in any case, LWS (spaces, tabs,
// folded lines) around '=' and ',', and quoted-pairs inside quoted strings. A token that is
// not followed by '=' starts a new challenge.
func scan(s string) ([]item, error) {
	var items []item
	i := 0
	for {
		i = skip(s, i, true)
		if i >= len(s) {
			return items, nil
		}
		j := token(s, i)
		if j == i {
			return nil, fmt.Errorf("unexpected %q at offset %d", s[i], i)
		}
		name := s[i:j]
		k := skip(s, j, false)
		if k >= len(s) || s[k] != '=' {
			items = append(items, item{scheme: name})
			i = j
			continue
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("parameter %q before the scheme", name)
		}
		k = skip(s, k+1, false)
		start := k
		var value string
		if k < len(s) && s[k] == '"' {
			var b strings.Builder
			k++
			closed := false
			for k < len(s) {
				c := s[k]
				if n := fold(s, k); n > 0 {
					// A folded line inside the quotes is one SP (RFC 3261 §7.3.1).
					b.WriteByte(' ')
					k += n
					continue
				}
				if c == '\\' {
					if k+1 >= len(s) {
						break
					}
					b.WriteByte(s[k+1])
					k += 2
					continue
				}
				k++
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted value of %q", name)
			}
			value = b.String()
		} else {
			for k < len(s) && !isLWS(s[k]) && s[k] != ',' && s[k] != '"' {
				k++
			}
			value = s[start:k]
		}
		items = append(items, item{key: name, value: value, start: start, end: k})
		i = k
	}
}

// skip returns the index of the first byte at or after i that is not LWS (and not ',' when
// commas is set).
func skip(s string, i int, commas bool) int {
	for i < len(s) && (isLWS(s[i]) || (commas && s[i] == ',')) {
		i++
	}
	return i
}

func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// fold returns the length of the line fold (CRLF or LF, then one or more SP or HTAB) at
// s[i:], or 0 when there is none.
func fold(s string, i int) int {
	j := i
	if j < len(s) && s[j] == '\r' {
		j++
	}
	if j >= len(s) || s[j] != '\n' {
		return 0
	}
	j++
	k := j
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k == j {
		return 0
	}
	return k - i
}

// token returns the end of the RFC 3261 token that starts at i (i itself when none does).
func token(s string, i int) int {
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return i
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// rawChallenge is one challenge read from a header value, before it is checked.
type rawChallenge struct {
	scheme string
	params map[string]string // lower-case names; the first occurrence wins
}

// parseChallenges reads every challenge in an auth header value.
func parseChallenges(s string) ([]rawChallenge, error) {
	items, err := scan(s)
	if err != nil {
		return nil, err
	}
	var out []rawChallenge
	for _, it := range items {
		if it.scheme != "" {
			out = append(out, rawChallenge{scheme: it.scheme, params: map[string]string{}})
			continue
		}
		p := out[len(out)-1].params
		key := strings.ToLower(it.key)
		if _, seen := p[key]; !seen {
			p[key] = it.value
		}
	}
	return out, nil
}

// challenge turns a raw challenge into a Challenge (not yet checked).
func (r rawChallenge) challenge(proxy bool) Challenge {
	return Challenge{
		Proxy:     proxy,
		Realm:     r.params["realm"],
		Domain:    r.params["domain"],
		Nonce:     r.params["nonce"],
		Opaque:    r.params["opaque"],
		Algorithm: strings.TrimSpace(r.params["algorithm"]),
		Qop:       r.params["qop"],
		Stale:     strings.EqualFold(strings.TrimSpace(r.params["stale"]), "true"),
	}
}
