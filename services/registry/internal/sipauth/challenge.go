package sipauth

import (
	"fmt"
	"strings"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// Header names, compared case-insensitively.
const (
	hdrWWWAuthenticate    = "WWW-Authenticate"
	hdrProxyAuthenticate  = "Proxy-Authenticate"
	hdrAuthorization      = "Authorization"
	hdrProxyAuthorization = "Proxy-Authorization"
	hdrGatewayAuth        = "X-Gateway-Auth"
)

// Challenge is a digest challenge from a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate).
type Challenge struct {
	Proxy bool // from a 407: answer with Proxy-Authorization
	// Realm, Domain, Nonce, Opaque and Algorithm are the challenge's parameters as offered;
	// Qop is the offered list as written, e.g. "auth" or "auth,auth-int".
	Realm, Domain, Nonce, Opaque, Algorithm, Qop string
	// Stale is set when the server found the nonce stale rather than the credentials wrong:
	// answer again with the new nonce (RFC 2617 §3.2.1).
	Stale bool
}

// ChallengeFrom reads the challenge of an UNAUTHORIZED or PROXY_AUTHENTICATION_REQUIRED
// answer.
//
// A 401's challenge comes from msg.WwwAuthenticate and from every extension named
// WWW-Authenticate (in any case). When both hold the same challenge (same nonce and
// algorithm), the extension's raw value wins: it is the only place `stale` can travel,
// since Routr never copies it into the field. A field with an empty scheme but a nonce is
// taken as Digest.
//
// A 407's challenge comes from the extensions named Proxy-Authenticate (Routr's EdgePort
// puts it there and leaves the field empty); the field is used only when they hold no
// usable challenge. The result has Proxy set.
//
// Of several usable challenges (RFC 8760), the first SHA-256 one is taken, else the first
// MD5 one. The errors wrap ErrNoChallenge, ErrNotDigest, ErrUnsupportedAlgorithm,
// ErrUnsupportedQop or ErrMalformedChallenge; when no challenge is usable, the error is
// about the first Digest challenge offered (or the first challenge, when none is Digest).
func ChallengeFrom(msg *sipmessagev2beta1.SIPMessage) (Challenge, error) {
	if msg == nil {
		return Challenge{}, fmt.Errorf("digest challenge: no message: %w", ErrNoChallenge)
	}
	var proxy bool
	switch t := msg.GetResponseType(); t {
	case sipmessagev2beta1.ResponseType_UNAUTHORIZED:
	case sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED:
		proxy = true
	default:
		if msg.GetRequestUri() != nil {
			return Challenge{}, fmt.Errorf("digest challenge: message is a request: %w", ErrNoChallenge)
		}
		return Challenge{}, fmt.Errorf("digest challenge: response %s: %w", t, ErrNoChallenge)
	}

	header := hdrWWWAuthenticate
	if proxy {
		header = hdrProxyAuthenticate
	}
	var (
		fromExt []candidate
		errs    []error // parse errors of raw values, reported when nothing usable is found
	)
	for _, ext := range msg.GetExtensions() {
		if !strings.EqualFold(strings.TrimSpace(ext.GetName()), header) {
			continue
		}
		raws, err := parseChallenges(ext.GetValue())
		if err != nil {
			errs = append(errs, fmt.Errorf("digest challenge: %s: %v: %w", header, err, ErrMalformedChallenge))
			continue
		}
		for _, r := range raws {
			fromExt = append(fromExt, candidate{scheme: r.scheme, ch: r.challenge(proxy)})
		}
	}
	field, hasField := fieldCandidate(msg.GetWwwAuthenticate(), proxy)

	var groups [][]candidate
	if proxy {
		groups = append(groups, fromExt)
		if hasField {
			groups = append(groups, []candidate{field})
		}
	} else {
		all := fromExt
		if hasField && !duplicate(fromExt, field) {
			all = append(all, field)
		}
		groups = append(groups, all)
	}

	var firstErr error
	for _, g := range groups {
		ch, err := pick(g)
		if err == nil {
			return ch, nil
		}
		if firstErr == nil && len(g) > 0 {
			firstErr = err
		}
	}
	if firstErr != nil {
		return Challenge{}, firstErr
	}
	if len(errs) > 0 {
		return Challenge{}, errs[0]
	}
	return Challenge{}, fmt.Errorf("digest challenge: %s %s: %w", msg.GetResponseType(), header, ErrNoChallenge)
}

// candidate is a challenge with its scheme, not yet checked.
type candidate struct {
	scheme string
	ch     Challenge
}

// fieldCandidate reads the www_authenticate field; it is absent when nil or empty.
func fieldCandidate(w *sipmessagev2beta1.WWWAuthenticate, proxy bool) (candidate, bool) {
	if w == nil || (w.GetScheme() == "" && w.GetNonce() == "" && w.GetRealm() == "") {
		return candidate{}, false
	}
	scheme := strings.TrimSpace(w.GetScheme())
	if scheme == "" {
		scheme = "Digest"
	}
	return candidate{scheme: scheme, ch: Challenge{
		Proxy:     proxy,
		Realm:     w.GetRealm(),
		Domain:    w.GetDomain(),
		Nonce:     w.GetNonce(),
		Opaque:    w.GetOpaque(),
		Algorithm: strings.TrimSpace(w.GetAlgorithm()),
		Qop:       w.GetQop(),
		Stale:     w.GetStale(),
	}}, true
}

// duplicate reports whether cs already holds c's challenge (same nonce and algorithm).
func duplicate(cs []candidate, c candidate) bool {
	a, _ := algorithmOf(c.ch.Algorithm)
	for _, o := range cs {
		b, _ := algorithmOf(o.ch.Algorithm)
		if o.ch.Nonce == c.ch.Nonce && a == b && strings.EqualFold(o.scheme, c.scheme) {
			return true
		}
	}
	return false
}

// pick returns the preferred usable challenge of cs: the first SHA-256, else the first MD5.
func pick(cs []candidate) (Challenge, error) {
	var (
		best      *Challenge
		bestAlg   algorithm
		firstErr  error
		errDigest bool // firstErr is about a Digest challenge
	)
	for i := range cs {
		c := &cs[i]
		alg, err := check(c.scheme, c.ch)
		if err != nil {
			isDigest := strings.EqualFold(c.scheme, "Digest")
			if firstErr == nil || (isDigest && !errDigest) {
				firstErr, errDigest = err, isDigest
			}
			continue
		}
		if best == nil || (alg == algSHA256 && bestAlg != algSHA256) {
			best, bestAlg = &c.ch, alg
		}
	}
	if best != nil {
		return *best, nil
	}
	if firstErr != nil {
		return Challenge{}, firstErr
	}
	return Challenge{}, fmt.Errorf("digest challenge: %w", ErrNoChallenge)
}

// check reports whether a challenge can be answered, and with which algorithm.
func check(scheme string, ch Challenge) (algorithm, error) {
	if !strings.EqualFold(scheme, "Digest") {
		return 0, fmt.Errorf("digest challenge: scheme %q: %w", scheme, ErrNotDigest)
	}
	alg, err := algorithmOf(ch.Algorithm)
	if err != nil {
		return 0, fmt.Errorf("digest challenge: %w", err)
	}
	if _, err := qopOf(ch.Qop); err != nil {
		return 0, fmt.Errorf("digest challenge: %w", err)
	}
	if ch.Nonce == "" {
		return 0, fmt.Errorf("digest challenge: no nonce: %w", ErrMalformedChallenge)
	}
	if err := checkEchoed(ch); err != nil {
		return 0, fmt.Errorf("digest challenge: %w", err)
	}
	return alg, nil
}

// checkEchoed refuses a challenge whose values would go into our Authorization or
// Proxy-Authorization as they are (realm, nonce, opaque, algorithm) but cannot: a control
// character (CR, LF, NUL, ...; HTAB is allowed in quoted values, where the grammar has
// LWS), invalid UTF-8, or a '"' or '\' (Routr writes the authorization field's values
// between quotes without escaping them, so they must be valid quoted-string content as
// they are). The error names the parameter, never its value.
func checkEchoed(ch Challenge) error {
	for _, f := range []struct{ name, value string }{{"realm", ch.Realm}, {"nonce", ch.Nonce}, {"opaque", ch.Opaque}} {
		if err := checkQuoted(f.value, true); err != nil {
			return fmt.Errorf("%s: %v: %w", f.name, err, ErrMalformedChallenge)
		}
	}
	if err := checkToken(ch.Algorithm); ch.Algorithm != "" && err != nil {
		return fmt.Errorf("algorithm: %v: %w", err, ErrMalformedChallenge)
	}
	return nil
}

// algorithm is a supported digest algorithm.
type algorithm int

const (
	algMD5 algorithm = iota + 1
	algSHA256
)

// algorithmOf maps an algorithm parameter to a supported algorithm; empty means MD5.
func algorithmOf(s string) (algorithm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "MD5":
		return algMD5, nil
	case "SHA-256":
		return algSHA256, nil
	}
	return 0, fmt.Errorf("algorithm %q: %w", s, ErrUnsupportedAlgorithm)
}

// qopOf reports whether qop=auth is to be used: false when no qop is offered (RFC 2069
// style), true when "auth" is among the offered values.
func qopOf(offered string) (bool, error) {
	if strings.TrimSpace(offered) == "" {
		return false, nil
	}
	for v := range strings.SplitSeq(offered, ",") {
		if strings.EqualFold(strings.TrimSpace(v), "auth") {
			return true, nil
		}
	}
	return false, fmt.Errorf("qop %q: %w", offered, ErrUnsupportedQop)
}
