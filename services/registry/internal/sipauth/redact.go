package sipauth

import (
	"encoding/base64"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// GatewayAuth returns the X-Gateway-Auth value Routr's EdgePort expects:
// base64 (standard encoding) of "username:password". The EdgePort splits the decoded value
// on ':' and needs exactly two non-empty parts, so an empty username or password, or a ':'
// in either, is refused with ErrInvalidCredentials (the error never contains the password).
func GatewayAuth(cred Credentials) (string, error) {
	switch {
	case cred.Username == "":
		return "", fmt.Errorf("gateway auth: empty username: %w", ErrInvalidCredentials)
	case cred.Password == "":
		return "", fmt.Errorf("gateway auth: empty password: %w", ErrInvalidCredentials)
	case strings.Contains(cred.Username, ":"):
		return "", fmt.Errorf("gateway auth: username contains ':': %w", ErrInvalidCredentials)
	case strings.Contains(cred.Password, ":"):
		return "", fmt.Errorf("gateway auth: password contains ':': %w", ErrInvalidCredentials)
	}
	return base64.StdEncoding.EncodeToString([]byte(cred.Username + ":" + cred.Password)), nil
}

// Redact returns a deep copy of msg (proto.Clone) that is safe to log or to show in an API
// reply: the authorization field's response, the response parameter of every extension
// named Authorization or Proxy-Authorization, and the value of every X-Gateway-Auth
// extension (names in any case) become "REDACTED". An Authorization or Proxy-Authorization
// extension that is not Digest credentials which can be parsed (Basic, say) is replaced
// whole. msg itself is not changed; a nil msg gives nil.
func Redact(msg *sipmessagev2beta1.SIPMessage) *sipmessagev2beta1.SIPMessage {
	if msg == nil {
		return nil
	}
	out, ok := proto.Clone(msg).(*sipmessagev2beta1.SIPMessage)
	if !ok {
		return nil // not reached: Clone returns the type it is given
	}
	if a := out.GetAuthorization(); a != nil && a.GetResponse() != "" {
		a.Response = redacted
	}
	for _, e := range out.GetExtensions() {
		if e == nil {
			continue
		}
		name := strings.TrimSpace(e.GetName())
		switch {
		case strings.EqualFold(name, hdrGatewayAuth):
			e.Value = redacted
		case strings.EqualFold(name, hdrAuthorization), strings.EqualFold(name, hdrProxyAuthorization):
			e.Value = redactCredentials(e.GetValue())
		}
	}
	return out
}

// redactCredentials replaces the response parameter of Digest credentials; anything it
// cannot parse as Digest credentials is replaced whole.
func redactCredentials(v string) string {
	items, err := scan(v)
	if err != nil || len(items) == 0 {
		return redacted
	}
	var b strings.Builder
	last := 0
	for _, it := range items {
		if it.scheme != "" && !strings.EqualFold(it.scheme, "Digest") {
			return redacted
		}
		if strings.EqualFold(it.key, "response") {
			b.WriteString(v[last:it.start])
			b.WriteString(`"` + redacted + `"`)
			last = it.end
		}
	}
	b.WriteString(v[last:])
	return b.String()
}
