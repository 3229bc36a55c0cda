package fakerequester_test

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strings"
	"testing"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/fakerequester"
)

// challengeParams are the parts of a challenge the test reads back.
type challengeParams struct {
	realm, nonce, qop, algorithm, opaque string
	stale                                bool
}

var headerParam = regexp.MustCompile(`(\w+)=(?:"([^"]*)"|([^,\s]+))`)

// readChallenge takes the challenge out of an answer the way the registry must: from
// www_authenticate for a 401, from the Proxy-Authenticate extension for a 407.
func readChallenge(t *testing.T, m *sipmessagev2beta1.SIPMessage, proxy bool) challengeParams {
	t.Helper()
	if !proxy {
		if m.GetResponseType() != sipmessagev2beta1.ResponseType_UNAUTHORIZED || m.GetReasonPhrase() != "Unauthorized" {
			t.Fatalf("answer %v %q, want UNAUTHORIZED", m.GetResponseType(), m.GetReasonPhrase())
		}
		if ext(m, "Proxy-Authenticate") != "" {
			t.Errorf("401 has a Proxy-Authenticate extension")
		}
		w := m.GetWwwAuthenticate()
		if w.GetScheme() != "Digest" {
			t.Errorf("scheme %q, want Digest", w.GetScheme())
		}
		return challengeParams{w.GetRealm(), w.GetNonce(), w.GetQop(), w.GetAlgorithm(), w.GetOpaque(), w.GetStale()}
	}
	if m.GetResponseType() != sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED || m.GetReasonPhrase() != "Proxy Authentication Required" {
		t.Fatalf("answer %v %q, want PROXY_AUTHENTICATION_REQUIRED", m.GetResponseType(), m.GetReasonPhrase())
	}
	if m.GetWwwAuthenticate() != nil {
		t.Errorf("407 has www_authenticate %v; Routr delivers it only as an extension", m.GetWwwAuthenticate())
	}
	v := ext(m, "Proxy-Authenticate")
	if !strings.HasPrefix(v, "Digest ") {
		t.Fatalf("Proxy-Authenticate = %q", v)
	}
	p := map[string]string{}
	for _, kv := range headerParam.FindAllStringSubmatch(v, -1) {
		p[kv[1]] = kv[2] + kv[3]
	}
	c := challengeParams{p["realm"], p["nonce"], p["qop"], p["algorithm"], p["opaque"], p["stale"] == "true"}
	want := fmt.Sprintf(`Digest realm="%s", nonce="%s", qop="auth", algorithm=%s, opaque="%s"`, c.realm, c.nonce, c.algorithm, c.opaque)
	if c.stale {
		want += ", stale=true"
	}
	if v != want {
		t.Errorf("Proxy-Authenticate = %q, want the form %q", v, want)
	}
	return c
}

// testHash is H of RFC 7616, computed here without the package's code.
func testHash(algorithm, s string) string {
	var h hash.Hash = md5.New()
	if algorithm == "SHA-256" {
		h = sha256.New()
	}
	io.WriteString(h, s)
	return hex.EncodeToString(h.Sum(nil))
}

// credentialsFor answers challenge c as a client would, for a REGISTER to uri.
func credentialsFor(c challengeParams, user, password, uri string, nc int32, cnonce string, proxy bool) reg {
	ha1 := testHash(c.algorithm, user+":"+c.realm+":"+password)
	ha2 := testHash(c.algorithm, "REGISTER:"+uri)
	ncHex := fmt.Sprintf("%08x", nc)
	response := testHash(c.algorithm, strings.Join([]string{ha1, c.nonce, ncHex, cnonce, "auth", ha2}, ":"))
	if proxy {
		v := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, cnonce="%s", opaque="%s", qop=auth, nc=%s`,
			user, c.realm, c.nonce, uri, response, c.algorithm, cnonce, c.opaque, ncHex)
		return reg{exts: []*sipmessagev2beta1.Extension{{Name: "Proxy-Authorization", Value: v}}}
	}
	return reg{auth: &sipmessagev2beta1.Authorization{
		Scheme: "Digest", Username: user, Realm: c.realm, Nonce: c.nonce, Uri: uri, Response: response,
		Algorithm: c.algorithm, CNonce: cnonce, Opaque: c.opaque, Qop: "auth", NonceCount: nc, Method: "REGISTER",
	}}
}

func TestDigestExchange(t *testing.T) {
	tests := []struct {
		name      string
		algorithm string
		proxy     bool
	}{
		{"401 MD5", "MD5", false},
		{"401 SHA-256", "SHA-256", false},
		{"407 MD5", "MD5", true},
		{"407 SHA-256", "SHA-256", true},
	}
	const uri = "sip:10.0.0.1:5060;transport=udp"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
				Trunks: map[string]fakerequester.Behaviour{"alice": {
					Kind: fakerequester.KindChallenge, Realm: "sip.example.com", Algorithm: tt.algorithm,
					Proxy: tt.proxy, Username: "alice-user", Password: "s3cret", Expires: 300,
				}},
			}})
			c := start(t, s)
			send := func(r reg) *sipmessagev2beta1.SIPMessage {
				t.Helper()
				r.user, r.expires = "alice", 3600
				resp, err := c.SendMessage(t.Context(), r.request())
				if err != nil {
					t.Fatal(err)
				}
				return resp.GetMessage()
			}
			withCSeq := func(r reg, n int) reg { r.cseq = fmt.Sprintf("%d REGISTER", n); return r }

			first := readChallenge(t, send(reg{cseq: "1 REGISTER"}), tt.proxy)
			if first.realm != "sip.example.com" || first.algorithm != tt.algorithm || first.qop != "auth" ||
				first.nonce == "" || first.opaque == "" || first.stale {
				t.Fatalf("challenge = %+v", first)
			}

			good := credentialsFor(first, "alice-user", "s3cret", uri, 1, "c0ffee", tt.proxy)
			ok := send(withCSeq(good, 2))
			if ok.GetResponseType() != sipmessagev2beta1.ResponseType_OK || ok.GetContact().GetExpires() != 300 || ext(ok, "CSeq") != "2 REGISTER" {
				t.Fatalf("right credentials: %v", ok)
			}

			wrong := send(withCSeq(credentialsFor(first, "alice-user", "guess", uri, 2, "c0ffee", tt.proxy), 3))
			again := readChallenge(t, wrong, tt.proxy)
			if again.nonce == first.nonce || again.stale {
				t.Errorf("wrong password: challenge %+v, want a fresh nonce and no stale", again)
			}

			replay := readChallenge(t, send(withCSeq(good, 4)), tt.proxy)
			if replay.nonce == first.nonce {
				t.Errorf("replayed nonce count: challenge reuses the nonce")
			}

			next := send(withCSeq(credentialsFor(first, "alice-user", "s3cret", uri, 2, "beef", tt.proxy), 5))
			if next.GetResponseType() != sipmessagev2beta1.ResponseType_OK {
				t.Errorf("same nonce, next nonce count: %v, want OK", next.GetResponseType())
			}

			fresh := send(withCSeq(credentialsFor(again, "alice-user", "s3cret", uri, 1, "abc", tt.proxy), 6))
			if fresh.GetResponseType() != sipmessagev2beta1.ResponseType_OK {
				t.Errorf("credentials for the second nonce: %v, want OK", fresh.GetResponseType())
			}

			// Credentials in the place of the other challenge kind do not count.
			misplaced := credentialsFor(first, "alice-user", "s3cret", uri, 7, "x", !tt.proxy)
			readChallenge(t, send(withCSeq(misplaced, 7)), tt.proxy)
		})
	}
}

func TestDigestStaleOnce(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", proxy), func(t *testing.T) {
			s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
				Default: fakerequester.Behaviour{
					Kind: fakerequester.KindChallenge, Algorithm: "SHA-256", Proxy: proxy,
					Username: "u", Password: "p", StaleOnce: true,
				},
			}})
			c := start(t, s)
			send := func(r reg) *sipmessagev2beta1.SIPMessage {
				t.Helper()
				r.user, r.expires = "bob", 600
				resp, err := c.SendMessage(t.Context(), r.request())
				if err != nil {
					t.Fatal(err)
				}
				return resp.GetMessage()
			}
			first := readChallenge(t, send(reg{}), proxy)
			if first.realm != fakerequester.DefaultRealm {
				t.Errorf("realm %q, want %q", first.realm, fakerequester.DefaultRealm)
			}
			stale := readChallenge(t, send(credentialsFor(first, "u", "p", "sip:x", 1, "c", proxy)), proxy)
			if !stale.stale || stale.nonce == first.nonce {
				t.Fatalf("first credentials: challenge %+v, want stale with a fresh nonce", stale)
			}
			ok := send(credentialsFor(stale, "u", "p", "sip:x", 1, "c", proxy))
			if ok.GetResponseType() != sipmessagev2beta1.ResponseType_OK || ok.GetContact().GetExpires() != 600 {
				t.Fatalf("credentials for the stale challenge's nonce: %v, want OK", ok)
			}
			wrong := readChallenge(t, send(credentialsFor(stale, "u", "bad", "sip:x", 2, "c", proxy)), proxy)
			if wrong.stale {
				t.Errorf("stale is sent only once")
			}
		})
	}
}

func TestChallengeFailNThenOK(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
		Default: fakerequester.Behaviour{Kind: fakerequester.KindChallenge, FailN: 1},
	}})
	c := start(t, s)
	for i, want := range []rt{sipmessagev2beta1.ResponseType_UNAUTHORIZED, sipmessagev2beta1.ResponseType_OK} {
		resp, err := c.SendMessage(t.Context(), reg{user: "carol", expires: 600}.request())
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetMessage().GetResponseType(); got != want {
			t.Errorf("request %d: %v, want %v", i+1, got, want)
		}
	}
}
