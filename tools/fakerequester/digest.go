package fakerequester

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/icholy/digest"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// authenticator issues digest challenges and verifies the credentials that answer
// them. It is this fake's own verifier, independent of the registry's digest code.
type authenticator struct {
	opaque string

	mu     sync.Mutex
	nonces map[string]*issued
}

// issued is a nonce this server handed out.
type issued struct {
	realm, algorithm string
	used             map[uint32]bool // nonce counts already accepted
}

// digestCredentials are the parts of an Authorization or Proxy-Authorization.
type digestCredentials struct {
	scheme, username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop string
	nc                                                                            uint32
}

func newAuthenticator() *authenticator {
	return &authenticator{opaque: rand.Text(), nonces: make(map[string]*issued)}
}

// challenge issues a fresh nonce for realm and algorithm and returns the answer to
// msg that carries it: a 401 with www_authenticate, or with proxy a 407 with a
// Proxy-Authenticate extension only.
func (a *authenticator) challenge(msg *sipmessagev2beta1.SIPMessage, realm, algorithm string, proxy, stale bool) *sipmessagev2beta1.SIPMessage {
	nonce := rand.Text()
	a.mu.Lock()
	a.nonces[nonce] = &issued{realm: realm, algorithm: algorithm, used: make(map[uint32]bool, 1)}
	a.mu.Unlock()

	if proxy {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", qop="auth", algorithm=%s, opaque="%s"`, realm, nonce, algorithm, a.opaque)
		if stale {
			v += ", stale=true"
		}
		return withExtension(answer(msg, sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED), "Proxy-Authenticate", v)
	}
	m := answer(msg, sipmessagev2beta1.ResponseType_UNAUTHORIZED)
	m.WwwAuthenticate = &sipmessagev2beta1.WWWAuthenticate{
		Scheme:    "Digest",
		Realm:     realm,
		Nonce:     nonce,
		Qop:       "auth",
		Algorithm: algorithm,
		Opaque:    a.opaque,
		Stale:     stale,
	}
	return m
}

// credentials returns the credentials msg carries for a 401 (the authorization
// field) or a 407 (a Proxy-Authorization extension), and whether it carries any.
// A Proxy-Authorization that cannot be parsed counts as credentials that fail.
func credentials(msg *sipmessagev2beta1.SIPMessage, proxy bool) (digestCredentials, bool) {
	if !proxy {
		au := msg.GetAuthorization()
		if au == nil || au.GetResponse() == "" {
			return digestCredentials{}, false
		}
		return digestCredentials{
			scheme: au.GetScheme(), username: au.GetUsername(), realm: au.GetRealm(),
			nonce: au.GetNonce(), uri: au.GetUri(), response: au.GetResponse(),
			algorithm: au.GetAlgorithm(), cnonce: au.GetCNonce(), opaque: au.GetOpaque(),
			qop: au.GetQop(), nc: uint32(au.GetNonceCount()),
		}, true
	}
	v, ok := extension(msg, "Proxy-Authorization")
	if !ok {
		return digestCredentials{}, false
	}
	c, err := digest.ParseCredentials(v)
	if err != nil {
		return digestCredentials{scheme: "unparsable"}, true
	}
	return digestCredentials{
		scheme: "Digest", username: c.Username, realm: c.Realm, nonce: c.Nonce,
		uri: c.URI, response: c.Response, algorithm: c.Algorithm, cnonce: c.Cnonce,
		opaque: c.Opaque, qop: c.QOP, nc: uint32(c.Nc),
	}, true
}

// verify checks c against the expected username, password and realm for a request
// of method. It returns "" when they are right, else why not (with no secret in it).
// A nonce count is used up only by a right answer.
func (a *authenticator) verify(c digestCredentials, method, username, password, realm string) string {
	switch {
	case c.scheme != "" && !strings.EqualFold(c.scheme, "Digest"):
		return "scheme is not Digest"
	case c.username != username:
		return "unknown username"
	case c.realm != realm:
		return "wrong realm"
	case c.opaque != a.opaque:
		return "wrong opaque"
	case c.qop != "auth":
		return "qop is not auth"
	case c.cnonce == "":
		return "no cnonce"
	case c.nc == 0:
		return "no nonce count"
	case c.uri == "":
		return "no digest uri"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.nonces[c.nonce]
	switch {
	case !ok:
		return "nonce not issued here"
	case n.realm != realm:
		return "nonce issued for another realm"
	case normAlgorithm(c.algorithm) != n.algorithm:
		return "algorithm differs from the challenge's"
	case n.used[c.nc]:
		return "nonce count reused"
	}
	want := digestResponse(n.algorithm, username, realm, password, method, c.uri, c.nonce, c.nc, c.cnonce, c.qop)
	if !strings.EqualFold(c.response, want) {
		return "wrong response"
	}
	n.used[c.nc] = true
	return ""
}

// digestResponse is the qop=auth response of RFC 7616 §3.4.1 with H = MD5 or SHA-256:
// H(H(user:realm:password):nonce:nc:cnonce:qop:H(method:uri)), nc as 8 hex digits.
func digestResponse(algorithm, username, realm, password, method, uri, nonce string, nc uint32, cnonce, qop string) string {
	h := hashMD5
	if algorithm == AlgorithmSHA256 {
		h = hashSHA256
	}
	ha1 := h(username + ":" + realm + ":" + password)
	ha2 := h(method + ":" + uri)
	return h(fmt.Sprintf("%s:%s:%08x:%s:%s:%s", ha1, nonce, nc, cnonce, qop, ha2))
}

func hashMD5(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func hashSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
