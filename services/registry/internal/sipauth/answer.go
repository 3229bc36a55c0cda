package sipauth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/icholy/digest"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// Credentials are the username and password to answer with.
//
// The password never appears in what String, Format (every fmt verb), LogValue or
// MarshalJSON produce.
type Credentials struct{ Username, Password string }

// String shows the username only; the password is shown as REDACTED.
func (c Credentials) String() string {
	return fmt.Sprintf("username=%q, password=%s", c.Username, redacted)
}

// Format writes String for every fmt verb, so that no verb (%v, %+v, %#v, %s, %q, %x, ...)
// can print the password.
func (c Credentials) Format(f fmt.State, verb rune) { format(f, verb, c.String()) }

// LogValue implements slog.LogValuer: the username, and the password as REDACTED.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", redacted))
}

// MarshalJSON renders the username, and the password as REDACTED, so that credentials
// cannot leak through a JSON log or an API reply.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{c.Username, redacted})
}

// Answer computes the response to ch for method (REGISTER) and uri (the Request-URI, e.g.
// "sip:example.com;transport=udp"; used exactly as given, in the hash and in the header).
//
// With qop=auth (when the challenge offers "auth"), nc is the nonce count (1 for a new
// nonce; 0 is taken as 1) and cnonce the client nonce, 32 random hex digits from
// crypto/rand when empty. Without qop (RFC 2069 style) nc and cnonce are not used and the
// result has neither. nc must not exceed math.MaxInt32, the largest nonce_count Routr's
// SIPMessage can carry.
//
// The answer is refused (ErrUnsupportedAlgorithm, ErrUnsupportedQop, ErrMalformedChallenge,
// ErrInvalidCredentials) when the challenge cannot be answered, the username, method or
// uri is empty, or a value that goes into the header cannot stand there as it is: a
// control character (CR, LF, NUL, ...: it would split the header; HTAB is allowed in the
// username, realm, nonce and opaque, where the grammar has LWS), invalid UTF-8, a '"' or
// '\' (Routr writes the authorization field's values between quotes without escaping),
// a method or algorithm that is not a token. So every field of the answer is valid
// quoted-string content (or a token) as it is. Errors never contain the password, nor a
// refused value.
func Answer(ch Challenge, cred Credentials, method, uri string, nc uint32, cnonce string) (Authorization, error) {
	if _, err := algorithmOf(ch.Algorithm); err != nil {
		return Authorization{}, fmt.Errorf("digest answer: %w", err)
	}
	useQop, err := qopOf(ch.Qop)
	if err != nil {
		return Authorization{}, fmt.Errorf("digest answer: %w", err)
	}
	if ch.Nonce == "" {
		return Authorization{}, fmt.Errorf("digest answer: no nonce: %w", ErrMalformedChallenge)
	}
	if cred.Username == "" {
		return Authorization{}, fmt.Errorf("digest answer: empty username: %w", ErrInvalidCredentials)
	}
	if method == "" || uri == "" {
		return Authorization{}, fmt.Errorf("digest answer: empty method or uri: %w", ErrMalformedChallenge)
	}
	if nc > math.MaxInt32 {
		return Authorization{}, fmt.Errorf("digest answer: nonce count %d out of range", nc)
	}
	// Every value that goes into the header must be valid there as it is: Routr writes the
	// authorization field's values between quotes without escaping them.
	if err := checkQuoted(cred.Username, true); err != nil {
		return Authorization{}, fmt.Errorf("digest answer: username: %v: %w", err, ErrInvalidCredentials)
	}
	if err := checkEchoed(ch); err != nil {
		return Authorization{}, fmt.Errorf("digest answer: %w", err)
	}
	for _, f := range []struct{ name, value string }{{"uri", uri}, {"cnonce", cnonce}} {
		if err := checkQuoted(f.value, false); err != nil {
			return Authorization{}, fmt.Errorf("digest answer: %s: %v: %w", f.name, err, ErrMalformedChallenge)
		}
	}
	if err := checkToken(method); err != nil {
		return Authorization{}, fmt.Errorf("digest answer: method: %v: %w", err, ErrMalformedChallenge)
	}

	a := Authorization{
		Proxy:     ch.Proxy,
		Username:  cred.Username,
		Realm:     ch.Realm,
		Nonce:     ch.Nonce,
		URI:       uri,
		Algorithm: ch.Algorithm,
		Opaque:    ch.Opaque,
	}
	dc := &digest.Challenge{Realm: ch.Realm, Nonce: ch.Nonce, Opaque: ch.Opaque, Algorithm: ch.Algorithm}
	opts := digest.Options{Method: method, URI: uri, Username: cred.Username, Password: cred.Password}
	if useQop {
		if nc == 0 {
			nc = 1
		}
		if cnonce == "" {
			cnonce = newCnonce()
		}
		a.Qop, a.NC, a.Cnonce = "auth", nc, cnonce
		dc.QOP = []string{"auth"}
		opts.Count, opts.Cnonce = int(nc), cnonce
	}
	res, err := digest.Digest(dc, opts)
	if err != nil {
		// Not reached: the algorithm and qop were checked above. The library's errors name
		// the algorithm or qop only, never the password.
		return Authorization{}, fmt.Errorf("digest answer: %w", err)
	}
	a.Response = res.Response
	return a, nil
}

// newCnonce returns 32 random hex digits. crypto/rand.Read never fails (since Go 1.24 it
// crashes the program instead of returning an error).
func newCnonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkQuoted reports why s cannot travel as quoted-string content as it is (RFC 3261
// §25.1 qdtext, with no quoted-pair): invalid UTF-8, a control character (C0 with CR, LF
// and NUL, DEL, C1; HTAB only when tab is set), '"' or '\'. The reason never holds s.
func checkQuoted(s string, tab bool) error {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return errors.New("invalid UTF-8")
		case r == '\t' && tab:
		case unicode.IsControl(r):
			return fmt.Errorf("control character U+%04X", r)
		case r == '"' || r == '\\':
			return fmt.Errorf("%q cannot be quoted as is", r)
		}
		i += n
	}
	return nil
}

// checkToken reports why s is not an RFC 3261 token.
func checkToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			if c := s[i]; c < 0x20 || c == 0x7f {
				return fmt.Errorf("control character U+%04X", c)
			}
			return fmt.Errorf("%q is not a token", s)
		}
	}
	return nil
}

// Authorization is the computed answer to a challenge.
//
// Response is the secret part: String, Format (every fmt verb), LogValue and MarshalJSON
// show it as REDACTED. Only Header, Proto and Apply, which build the request, carry it.
type Authorization struct {
	Proxy bool // answers a 407: travels as Proxy-Authorization
	// Username .. Opaque are the header's parameters; Algorithm is as in the challenge
	// (empty when it named none), Qop is "auth" or empty, and Cnonce is empty without qop.
	Username, Realm, Nonce, URI, Response, Algorithm, Qop, Cnonce, Opaque string
	// NC is the nonce count; 0 without qop.
	NC uint32
}

// Header renders the header value:
//
//	Digest username="..", realm="..", nonce="..", uri="..", response="..", algorithm=MD5, qop=auth, nc=00000001, cnonce="..", opaque=".."
//
// algorithm only when the challenge named one (as it was written there); qop, nc and
// cnonce only with qop; opaque only when set. Quoted values escape '"' and '\'.
func (a Authorization) Header() string {
	return a.render(a.Response, true)
}

// render writes the header value; full adds the uri, nonce, cnonce and opaque, which
// String leaves out.
func (a Authorization) render(response string, full bool) string {
	var b strings.Builder
	b.WriteString("Digest username=")
	b.WriteString(quote(a.Username))
	b.WriteString(", realm=")
	b.WriteString(quote(a.Realm))
	if full {
		b.WriteString(", nonce=")
		b.WriteString(quote(a.Nonce))
		b.WriteString(", uri=")
		b.WriteString(quote(a.URI))
		b.WriteString(", response=")
		b.WriteString(quote(response))
	}
	if a.Algorithm != "" {
		b.WriteString(", algorithm=")
		b.WriteString(a.Algorithm)
	}
	if a.Qop != "" {
		b.WriteString(", qop=")
		b.WriteString(a.Qop)
		fmt.Fprintf(&b, ", nc=%08x", a.NC)
		if full {
			b.WriteString(", cnonce=")
			b.WriteString(quote(a.Cnonce))
		}
	}
	if full && a.Opaque != "" {
		b.WriteString(", opaque=")
		b.WriteString(quote(a.Opaque))
	}
	if !full {
		b.WriteString(", response=")
		b.WriteString(quote(response))
	}
	return b.String()
}

// quote renders s as a SIP quoted-string (RFC 3261 §25.1): '"' and '\' become quoted-pairs.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// HeaderName is "Proxy-Authorization" for the answer to a 407, else "Authorization".
func (a Authorization) HeaderName() string {
	if a.Proxy {
		return hdrProxyAuthorization
	}
	return hdrAuthorization
}

// Proto returns the value of the SIPMessage authorization field: scheme "Digest", the
// given method (REGISTER), nonce_count = NC (Answer never returns an NC above
// math.MaxInt32; a larger one is capped, since Routr rejects a negative count).
//
// Routr's EdgePort writes nc (as 00000000 when 0) and opaque (as "" when empty) from this
// field even without qop; registrars ignore nc without qop.
func (a Authorization) Proto(method string) *sipmessagev2beta1.Authorization {
	return &sipmessagev2beta1.Authorization{
		Realm:      a.Realm,
		Scheme:     "Digest",
		CNonce:     a.Cnonce,
		Nonce:      a.Nonce,
		Algorithm:  a.Algorithm,
		Qop:        a.Qop,
		Opaque:     a.Opaque,
		Response:   a.Response,
		Username:   a.Username,
		Uri:        a.URI,
		Method:     method,
		NonceCount: int32(min(a.NC, math.MaxInt32)),
	}
}

// Apply puts the answer on a request message. The answer to a 401 becomes
// msg.Authorization = a.Proto(method), and any extension named Authorization is removed
// (the field wins over it anyway). The answer to a 407 becomes an extension
// {Name: "Proxy-Authorization", Value: a.Header()} that replaces any earlier one in place
// (or is appended), because Routr's SIPMessage has no Proxy-Authorization field; the
// Authorization field is left as it is, so a request can carry both (RFC 3261 §22.3).
// Apply builds a new extensions slice rather than editing the old one in place. A nil msg
// is left alone.
func (a Authorization) Apply(msg *sipmessagev2beta1.SIPMessage, method string) {
	if msg == nil {
		return
	}
	if !a.Proxy {
		msg.Authorization = a.Proto(method)
		msg.Extensions = withExtension(msg.GetExtensions(), hdrAuthorization, nil)
		return
	}
	msg.Extensions = withExtension(msg.GetExtensions(), hdrProxyAuthorization,
		&sipmessagev2beta1.Extension{Name: hdrProxyAuthorization, Value: a.Header()})
}

// withExtension returns a new slice of exts without those named name (in any case), with
// repl (if not nil) at the place of the first of them, or at the end.
func withExtension(exts []*sipmessagev2beta1.Extension, name string, repl *sipmessagev2beta1.Extension) []*sipmessagev2beta1.Extension {
	out := make([]*sipmessagev2beta1.Extension, 0, len(exts)+1)
	for _, e := range exts {
		if !strings.EqualFold(strings.TrimSpace(e.GetName()), name) {
			out = append(out, e)
			continue
		}
		if repl != nil {
			out = append(out, repl)
			repl = nil
		}
	}
	if repl != nil {
		out = append(out, repl)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// String shows the answer without its secret: username, realm, algorithm, qop, nc, and
// response="REDACTED".
func (a Authorization) String() string {
	return a.render(redacted, false)
}

// Format writes String for every fmt verb, so that no verb (%v, %+v, %#v, %s, %q, %x, ...)
// can print the response.
func (a Authorization) Format(f fmt.State, verb rune) { format(f, verb, a.String()) }

// LogValue implements slog.LogValuer: username, realm, algorithm, qop, nc, and response
// as REDACTED.
func (a Authorization) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("username", a.Username),
		slog.String("realm", a.Realm),
		slog.String("algorithm", a.Algorithm),
		slog.String("qop", a.Qop),
		slog.String("nc", fmt.Sprintf("%08x", a.NC)),
		slog.String("response", redacted),
	)
}

// MarshalJSON renders what LogValue shows, so that the response cannot leak through a JSON
// log or an API reply.
func (a Authorization) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Username  string `json:"username"`
		Realm     string `json:"realm"`
		Algorithm string `json:"algorithm,omitempty"`
		Qop       string `json:"qop,omitempty"`
		NC        string `json:"nc,omitempty"`
		Response  string `json:"response"`
	}{a.Username, a.Realm, a.Algorithm, a.Qop, fmt.Sprintf("%08x", a.NC), redacted})
}

// format writes s for any verb; %q quotes it.
func format(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = io.WriteString(f, s)
}
