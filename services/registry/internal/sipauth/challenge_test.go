package sipauth_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
)

// response builds an answer of type t with the given field and extensions.
func response(t pb.ResponseType, w *pb.WWWAuthenticate, exts ...*pb.Extension) *pb.SIPMessage {
	return &pb.SIPMessage{
		MessageType:     &pb.SIPMessage_ResponseType{ResponseType: t},
		WwwAuthenticate: w,
		Extensions:      exts,
	}
}

func ext(name, value string) *pb.Extension { return &pb.Extension{Name: name, Value: value} }

const (
	unauthorized = pb.ResponseType_UNAUTHORIZED
	proxyAuth    = pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED
)

func TestChallengeFrom(t *testing.T) {
	tests := []struct {
		name string
		msg  *pb.SIPMessage
		want sipauth.Challenge
	}{
		{
			name: "401 from the field (Routr)",
			msg: response(unauthorized, &pb.WWWAuthenticate{
				Scheme: "Digest", Realm: "sip.example.com", Domain: "sip:sip.example.com", Nonce: "n1",
				Algorithm: "MD5", Qop: "auth", Opaque: "op",
			}),
			want: sipauth.Challenge{Realm: "sip.example.com", Domain: "sip:sip.example.com", Nonce: "n1", Opaque: "op", Algorithm: "MD5", Qop: "auth"},
		},
		{
			name: "401 from the field without algorithm (Kamailio default)",
			msg:  response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "test.local", Nonce: "awPnCWsD", Qop: "auth"}),
			want: sipauth.Challenge{Realm: "test.local", Nonce: "awPnCWsD", Qop: "auth"},
		},
		{
			name: "401 field with an empty scheme is taken as Digest",
			msg:  response(unauthorized, &pb.WWWAuthenticate{Realm: "r", Nonce: "n"}),
			want: sipauth.Challenge{Realm: "r", Nonce: "n"},
		},
		{
			name: "401 stale=true in the raw header wins over the field",
			msg: response(unauthorized,
				&pb.WWWAuthenticate{Scheme: "Digest", Realm: "test.local", Nonce: "fresh", Qop: "auth"},
				ext("WWW-Authenticate", `Digest realm="test.local", nonce="fresh", qop="auth", stale=true`)),
			want: sipauth.Challenge{Realm: "test.local", Nonce: "fresh", Qop: "auth", Stale: true},
		},
		{
			name: "401 from the extension only, name in lower case, STALE=TRUE",
			msg:  response(unauthorized, nil, ext("www-authenticate", `Digest realm="r", nonce="n", STALE=TRUE`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "n", Stale: true},
		},
		{
			name: "401 stale=false",
			msg:  response(unauthorized, nil, ext("WWW-Authenticate", `Digest realm="r", nonce="n", stale=false`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "n"},
		},
		{
			name: "407 from the extension (Kamailio style)",
			msg: response(proxyAuth, nil,
				ext("Proxy-Authenticate", `Digest realm="test.local", nonce="awPnCWsDAAAAAAAAAAAAAAAAAAAA", qop="auth", algorithm=SHA-256`)),
			want: sipauth.Challenge{Proxy: true, Realm: "test.local", Nonce: "awPnCWsDAAAAAAAAAAAAAAAAAAAA", Qop: "auth", Algorithm: "SHA-256"},
		},
		{
			name: "407 from the extension (JAIN-SIP encoding, no spaces)",
			msg: response(proxyAuth, nil,
				ext("proxy-authenticate", `Digest realm="test.local",nonce="n/+=",opaque="o",qop="auth",algorithm=MD5`)),
			want: sipauth.Challenge{Proxy: true, Realm: "test.local", Nonce: "n/+=", Opaque: "o", Qop: "auth", Algorithm: "MD5"},
		},
		{
			name: "407 falls back to the field",
			msg:  response(proxyAuth, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "n"}),
			want: sipauth.Challenge{Proxy: true, Realm: "r", Nonce: "n"},
		},
		{
			name: "407 falls back to the field when the extension is unusable",
			msg: response(proxyAuth, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "n"},
				ext("Proxy-Authenticate", `Digest realm="r", nonce="x", algorithm=MD5-sess`)),
			want: sipauth.Challenge{Proxy: true, Realm: "r", Nonce: "n"},
		},
		{
			name: "407 prefers the extension to the field",
			msg: response(proxyAuth, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "field", Algorithm: "SHA-256"},
				ext("Proxy-Authenticate", `Digest realm="r", nonce="ext"`)),
			want: sipauth.Challenge{Proxy: true, Realm: "r", Nonce: "ext"},
		},
		{
			name: "several challenges in one value: SHA-256 preferred",
			msg: response(unauthorized, nil, ext("WWW-Authenticate",
				`Digest realm="r", nonce="md5", qop="auth", algorithm=MD5, Digest realm="r", nonce="sha", qop="auth", algorithm=SHA-256`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "sha", Qop: "auth", Algorithm: "SHA-256"},
		},
		{
			name: "several challenges in several extensions (RFC 8760 order): SHA-256 preferred",
			msg: response(proxyAuth, nil,
				ext("Proxy-Authenticate", `Digest realm="r", nonce="a", algorithm=MD5`),
				ext("Proxy-Authenticate", `Digest realm="r", nonce="b", algorithm=sha-256`),
				ext("Proxy-Authenticate", `Digest realm="r", nonce="c", algorithm=SHA-256`)),
			want: sipauth.Challenge{Proxy: true, Realm: "r", Nonce: "b", Algorithm: "sha-256"},
		},
		{
			name: "401 field MD5 and extension SHA-256: SHA-256 preferred",
			msg: response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "a", Algorithm: "MD5"},
				ext("WWW-Authenticate", `Digest realm="r", nonce="b", algorithm=SHA-256`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "b", Algorithm: "SHA-256"},
		},
		{
			name: "unsupported challenges are skipped",
			msg: response(unauthorized, nil, ext("WWW-Authenticate",
				`Digest realm="r", nonce="a", algorithm=SHA-512-256, Basic realm="r", Digest realm="r", nonce="b", algorithm=MD5`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "b", Algorithm: "MD5"},
		},
		{
			// A quoted-pair stands for its character; a folded line inside the quotes is
			// one SP. (A '"' or '\' in the value is refused: see TestChallengeFromErrors.)
			name: "tabs, folded lines, names in upper case, quoted-pairs",
			msg: response(unauthorized, nil, ext("WWW-Authenticate",
				"digest\tREALM = \"a \\qu\\oted\r\n\trealm\" ,\r\n NONCE=\"n\\1\",\tQop=\"auth-int, auth\"")),
			want: sipauth.Challenge{Realm: "a quoted realm", Nonce: "n1", Qop: "auth-int, auth"},
		},
		{
			name: "a tab inside the quotes is kept (LWS is qdtext)",
			msg:  response(unauthorized, nil, ext("WWW-Authenticate", "Digest realm=\"a\tb\", nonce=\"n\"")),
			want: sipauth.Challenge{Realm: "a\tb", Nonce: "n"},
		},
		{
			name: "a challenge with an unusable value is skipped for a usable one",
			msg: response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "good", Algorithm: "MD5"},
				ext("WWW-Authenticate", "Digest realm=\"r\", nonce=\"bad\rX-Injected: yes\", algorithm=SHA-256")),
			want: sipauth.Challenge{Realm: "r", Nonce: "good", Algorithm: "MD5"},
		},
		{
			name: "unknown parameters are ignored, the first of a repeated one wins",
			msg: response(unauthorized, nil, ext("WWW-Authenticate",
				`Digest realm="r", charset=UTF-8, userhash=false, nonce="first", nonce="second"`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "first"},
		},
		{
			name: "an unparsable extension does not hide a good field",
			msg: response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "n"},
				ext("WWW-Authenticate", `Digest realm="unterminated`)),
			want: sipauth.Challenge{Realm: "r", Nonce: "n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sipauth.ChallengeFrom(tt.msg)
			if err != nil {
				t.Fatalf("ChallengeFrom: %v", err)
			}
			if got != tt.want {
				t.Errorf("ChallengeFrom:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestChallengeFromErrors(t *testing.T) {
	request := &pb.SIPMessage{MessageType: &pb.SIPMessage_RequestUri{RequestUri: &pb.SipURI{Host: "example.com"}}}
	tests := []struct {
		name string
		msg  *pb.SIPMessage
		want error
	}{
		{"nil message", nil, sipauth.ErrNoChallenge},
		{"a request", request, sipauth.ErrNoChallenge},
		{"200 OK", response(pb.ResponseType_OK, &pb.WWWAuthenticate{Scheme: "Digest", Nonce: "n"}), sipauth.ErrNoChallenge},
		{"403 Forbidden", response(pb.ResponseType_FORBIDDEN, nil), sipauth.ErrNoChallenge},
		{"401 without challenge", response(unauthorized, nil), sipauth.ErrNoChallenge},
		{"401 with an empty field", response(unauthorized, &pb.WWWAuthenticate{}), sipauth.ErrNoChallenge},
		{"401 with an empty extension", response(unauthorized, nil, ext("WWW-Authenticate", " ")), sipauth.ErrNoChallenge},
		{"401 with only a Proxy-Authenticate", response(unauthorized, nil, ext("Proxy-Authenticate", `Digest realm="r", nonce="n"`)), sipauth.ErrNoChallenge},
		{"407 with only a WWW-Authenticate extension", response(proxyAuth, nil, ext("WWW-Authenticate", `Digest realm="r", nonce="n"`)), sipauth.ErrNoChallenge},
		{"field scheme Basic", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Basic", Realm: "r"}), sipauth.ErrNotDigest},
		{"extension scheme Basic", response(proxyAuth, nil, ext("Proxy-Authenticate", `Basic realm="r"`)), sipauth.ErrNotDigest},
		{"MD5-sess", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Nonce: "n", Algorithm: "MD5-sess"}), sipauth.ErrUnsupportedAlgorithm},
		{"SHA-256-sess", response(proxyAuth, nil, ext("Proxy-Authenticate", `Digest realm="r", nonce="n", algorithm=SHA-256-sess`)), sipauth.ErrUnsupportedAlgorithm},
		{"SHA-512-256", response(proxyAuth, nil, ext("Proxy-Authenticate", `Digest realm="r", nonce="n", algorithm=SHA-512-256`)), sipauth.ErrUnsupportedAlgorithm},
		{"AKAv1-MD5", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Nonce: "n", Algorithm: "AKAv1-MD5"}), sipauth.ErrUnsupportedAlgorithm},
		{"qop auth-int only", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Nonce: "n", Qop: "auth-int"}), sipauth.ErrUnsupportedQop},
		{"qop unknown", response(proxyAuth, nil, ext("Proxy-Authenticate", `Digest realm="r", nonce="n", qop="authx"`)), sipauth.ErrUnsupportedQop},
		{"no nonce", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r"}), sipauth.ErrMalformedChallenge},
		{"unterminated quote", response(proxyAuth, nil, ext("Proxy-Authenticate", `Digest realm="r, nonce="n`)), sipauth.ErrMalformedChallenge},
		{"parameter before the scheme", response(proxyAuth, nil, ext("Proxy-Authenticate", `realm="r", nonce="n"`)), sipauth.ErrMalformedChallenge},
		{"garbage", response(proxyAuth, nil, ext("Proxy-Authenticate", "Digest \x00")), sipauth.ErrMalformedChallenge},
		{"escaped quote in the realm", response(unauthorized, nil, ext("WWW-Authenticate", `Digest realm="a \"b\" c", nonce="n"`)), sipauth.ErrMalformedChallenge},
		{"escaped backslash in the nonce", response(unauthorized, nil, ext("WWW-Authenticate", `Digest realm="r", nonce="n\\"`)), sipauth.ErrMalformedChallenge},
		{"CRLF in the nonce (not a fold)", response(proxyAuth, nil, ext("Proxy-Authenticate", "Digest realm=\"r\", nonce=\"a\r\nX-Evil: 1\"")), sipauth.ErrMalformedChallenge},
		{"LF in the opaque", response(proxyAuth, nil, ext("Proxy-Authenticate", "Digest realm=\"r\", nonce=\"n\", opaque=\"o\nX\"")), sipauth.ErrMalformedChallenge},
		{"NUL in an unquoted nonce", response(proxyAuth, nil, ext("Proxy-Authenticate", "Digest realm=\"r\", nonce=n\x00x")), sipauth.ErrMalformedChallenge},
		{"NEL in the realm", response(unauthorized, nil, ext("WWW-Authenticate", "Digest realm=\"r\u0085\", nonce=\"n\"")), sipauth.ErrMalformedChallenge},
		{"invalid UTF-8 in the nonce", response(unauthorized, nil, ext("WWW-Authenticate", "Digest realm=\"r\", nonce=\"n\xff\"")), sipauth.ErrMalformedChallenge},
		{"CR in the field's realm", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r\r\nX: 1", Nonce: "n"}), sipauth.ErrMalformedChallenge},
		{"quote in the field's opaque", response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "n", Opaque: `o", x="y`}), sipauth.ErrMalformedChallenge},
		{"NUL in the field's nonce", response(proxyAuth, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "r", Nonce: "n\x00"}), sipauth.ErrMalformedChallenge},
		{"Basic then unsupported Digest: the Digest error is reported", response(unauthorized, nil,
			ext("WWW-Authenticate", `Basic realm="r", Digest realm="r", nonce="n", algorithm=MD5-sess`)), sipauth.ErrUnsupportedAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sipauth.ChallengeFrom(tt.msg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ChallengeFrom = %+v, %v; want error %v", got, err, tt.want)
			}
			if got != (sipauth.Challenge{}) {
				t.Errorf("ChallengeFrom returned %+v with its error", got)
			}
			if msg := err.Error(); unicode.IsUpper([]rune(msg)[0]) {
				t.Errorf("error %q does not start in lower case", msg)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n\x00\u0085") || !utf8.ValidString(msg) {
				t.Errorf("error %q holds a control character or invalid UTF-8", msg)
			}
		})
	}
}
