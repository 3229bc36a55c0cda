package sipauth_test

import (
	"strings"
	"testing"

	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
)

// FuzzChallengeFrom feeds raw challenge headers (as a WWW-Authenticate or Proxy-Authenticate
// extension) and field values to ChallengeFrom. It must not panic, and whatever it accepts
// must be answerable: Answer either succeeds with a header that cannot be split, or refuses
// a value that cannot travel in a header. The seed corpus is in
// testdata/fuzz/FuzzChallengeFrom.
func FuzzChallengeFrom(f *testing.F) {
	f.Add(false, `Digest realm="test.local", nonce="awPnCWsD", qop="auth"`, "Digest", "", "")
	f.Add(true, `Digest realm="r", nonce="a", algorithm=MD5, Digest realm="r", nonce="b", algorithm=SHA-256`, "", "", "")
	f.Fuzz(func(t *testing.T, proxy bool, raw, scheme, algorithm, qop string) {
		typ, name := pb.ResponseType_UNAUTHORIZED, "WWW-Authenticate"
		if proxy {
			typ, name = pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED, "Proxy-Authenticate"
		}
		msg := &pb.SIPMessage{
			MessageType: &pb.SIPMessage_ResponseType{ResponseType: typ},
			WwwAuthenticate: &pb.WWWAuthenticate{
				Scheme: scheme, Realm: "field.example", Nonce: "field-nonce", Algorithm: algorithm, Qop: qop,
			},
			Extensions: []*pb.Extension{{Name: name, Value: raw}},
		}
		ch, err := sipauth.ChallengeFrom(msg)
		if err != nil {
			if ch != (sipauth.Challenge{}) {
				t.Fatalf("challenge %+v returned with error %v", ch, err)
			}
			return
		}
		if ch.Proxy != proxy {
			t.Fatalf("Proxy = %v for a %s", ch.Proxy, typ)
		}
		if ch.Nonce == "" {
			t.Fatal("accepted a challenge without nonce")
		}
		a, err := sipauth.Answer(ch, sipauth.Credentials{Username: "u", Password: "p"}, "REGISTER", "sip:example.com", 1, "")
		if err != nil {
			return // control characters in the challenge: refused, not sent
		}
		if h := a.Header(); strings.ContainsAny(h, "\r\n") {
			t.Fatalf("header can be split: %q", h)
		}
		a.Apply(&pb.SIPMessage{}, "REGISTER")
		_ = sipauth.Redact(&pb.SIPMessage{Extensions: []*pb.Extension{{Name: a.HeaderName(), Value: a.Header()}}})
	})
}
