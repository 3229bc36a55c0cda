package sipauth_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
)

// FuzzChallengeFrom feeds raw challenge headers (as a WWW-Authenticate or Proxy-Authenticate
// extension), field values (scheme, algorithm, qop, realm, nonce, opaque) and a username
// to ChallengeFrom and Answer, as a hostile registrar and bad API data would. The property:
// for any input, either an error, or an answer whose every field has no CR, LF or NUL,
// whose quoted values are valid quoted-string content as they are (Routr writes the
// authorization field's values between quotes without escaping them) and whose other
// values are tokens; the rendered header parses back to the same values. Whatever
// ChallengeFrom accepts, Answer answers (only a bad username may be refused). The seed
// corpus is in testdata/fuzz/FuzzChallengeFrom.
func FuzzChallengeFrom(f *testing.F) {
	f.Add(false, `Digest realm="test.local", nonce="awPnCWsD", qop="auth"`, "Digest", "", "", "field.example", "field-nonce", "", "alice")
	f.Add(true, `Digest realm="r", nonce="a", algorithm=MD5, Digest realm="r", nonce="b", algorithm=SHA-256`, "", "", "", "", "", "", "alice")
	f.Fuzz(func(t *testing.T, proxy bool, raw, scheme, algorithm, qop, realm, nonce, opaque, username string) {
		typ, name := pb.ResponseType_UNAUTHORIZED, "WWW-Authenticate"
		if proxy {
			typ, name = pb.ResponseType_PROXY_AUTHENTICATION_REQUIRED, "Proxy-Authenticate"
		}
		msg := &pb.SIPMessage{
			MessageType: &pb.SIPMessage_ResponseType{ResponseType: typ},
			WwwAuthenticate: &pb.WWWAuthenticate{
				Scheme: scheme, Realm: realm, Nonce: nonce, Algorithm: algorithm, Qop: qop, Opaque: opaque,
			},
			Extensions: []*pb.Extension{{Name: name, Value: raw}},
		}
		ch, err := sipauth.ChallengeFrom(msg)
		if err != nil {
			if ch != (sipauth.Challenge{}) {
				t.Fatalf("challenge %+v returned with error %v", ch, err)
			}
			if !safeLine(err.Error()) {
				t.Fatalf("error %q holds a control character or invalid UTF-8", err)
			}
			return
		}
		if ch.Proxy != proxy {
			t.Fatalf("Proxy = %v for a %s", ch.Proxy, typ)
		}
		if ch.Nonce == "" {
			t.Fatal("accepted a challenge without nonce")
		}
		const uri = "sip:example.com:5060;transport=udp"
		a, err := sipauth.Answer(ch, sipauth.Credentials{Username: username, Password: "p\r\n\x00"}, "REGISTER", uri, 1, "")
		if err != nil {
			if !errors.Is(err, sipauth.ErrInvalidCredentials) {
				t.Fatalf("ChallengeFrom accepted %+v, but Answer refuses it: %v", ch, err)
			}
			if !safeLine(err.Error()) || strings.Contains(err.Error(), "p\r\n") {
				t.Fatalf("error %q", err)
			}
			return
		}
		if a.Proxy != proxy || a.URI != uri || a.Nonce != ch.Nonce || a.Realm != ch.Realm {
			t.Fatalf("answer %#v does not match the challenge %+v", a, ch)
		}
		for _, f := range []struct{ name, v string }{
			{"username", a.Username}, {"realm", a.Realm}, {"nonce", a.Nonce}, {"uri", a.URI},
			{"response", a.Response}, {"cnonce", a.Cnonce}, {"opaque", a.Opaque},
		} {
			if err := quotedContent(f.v); err != nil {
				t.Fatalf("%s %q: %v", f.name, f.v, err)
			}
		}
		for _, f := range []struct{ name, v string }{{"algorithm", a.Algorithm}, {"qop", a.Qop}} {
			if f.v != "" && !isToken(f.v) {
				t.Fatalf("%s %q is not a token", f.name, f.v)
			}
		}
		// The authorization field (401), as Routr receives it.
		p := a.Proto("REGISTER")
		p.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() == protoreflect.StringKind && strings.ContainsAny(v.String(), "\r\n\x00") {
				t.Fatalf("authorization.%s = %q", fd.Name(), v.String())
			}
			return true
		})
		// The Proxy-Authorization value (407), as we render it: valid, and read back the same.
		h := a.Header()
		params, err := parseCredentials(h)
		if err != nil {
			t.Fatalf("header %q: %v", h, err)
		}
		want := map[string]string{"username": a.Username, "realm": a.Realm, "nonce": a.Nonce, "uri": a.URI, "response": a.Response}
		if a.Algorithm != "" {
			want["algorithm"] = a.Algorithm
		}
		if a.Opaque != "" {
			want["opaque"] = a.Opaque
		}
		if a.Qop != "" {
			want["qop"], want["nc"], want["cnonce"] = a.Qop, fmt.Sprintf("%08x", a.NC), a.Cnonce
		}
		if fmt.Sprint(params) != fmt.Sprint(want) {
			t.Fatalf("header %q reads back as %q, want %q", h, params, want)
		}
		out := &pb.SIPMessage{}
		a.Apply(out, "REGISTER")
		red := sipauth.Redact(&pb.SIPMessage{Authorization: p, Extensions: []*pb.Extension{{Name: a.HeaderName(), Value: h}}})
		if red.GetAuthorization().GetResponse() != "REDACTED" ||
			(a.Response != "" && strings.Contains(red.GetExtensions()[0].GetValue(), a.Response)) {
			t.Fatalf("Redact left the response: %v", red)
		}
	})
}

// safeLine reports whether s can be logged on one line: valid UTF-8, no control character.
func safeLine(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// quotedContent checks s as the content of a quoted-string with no quoted-pair (RFC 3261
// §25.1): qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII; here, the LWS is
// SP or HTAB (no line break) and UTF8-NONASCII excludes the C1 controls.
func quotedContent(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("invalid UTF-8")
	}
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == 0x21 || 0x23 <= r && r <= 0x5b || 0x5d <= r && r <= 0x7e:
		case r >= 0x80 && !unicode.IsControl(r):
		default:
			return fmt.Errorf("%q is not qdtext", r)
		}
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return true
}

// parseCredentials reads a header value as our Header writes it, strictly:
// "Digest" SP param *(", " param), param = token "=" (token / quoted-string).
func parseCredentials(h string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(h, "Digest ")
	if !ok {
		return nil, errors.New("no Digest scheme")
	}
	out := map[string]string{}
	for {
		i := strings.IndexByte(rest, '=')
		if i <= 0 || !isToken(rest[:i]) {
			return nil, fmt.Errorf("bad parameter name at %q", rest)
		}
		key := rest[:i]
		rest = rest[i+1:]
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			j := 1
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' {
					j++
					if j >= len(rest) || rest[j] == '\r' || rest[j] == '\n' {
						return nil, fmt.Errorf("bad quoted-pair in %q", key)
					}
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return nil, fmt.Errorf("unterminated value of %q", key)
			}
			if err := quotedContent(val.String()); err != nil {
				return nil, fmt.Errorf("value of %q: %v", key, err)
			}
			rest = rest[j+1:]
		} else {
			j := 0
			for j < len(rest) && rest[j] != ',' {
				j++
			}
			if !isToken(rest[:j]) {
				return nil, fmt.Errorf("value of %q is not a token", key)
			}
			val.WriteString(rest[:j])
			rest = rest[j:]
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%q twice", key)
		}
		out[key] = val.String()
		if rest == "" {
			return out, nil
		}
		if rest, ok = strings.CutPrefix(rest, ", "); !ok {
			return nil, fmt.Errorf("expected \", \" at %q", rest)
		}
	}
}
