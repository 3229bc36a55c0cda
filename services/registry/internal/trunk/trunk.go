// Package trunk turns the Routr API's Trunk into what the registry needs to register
// it: the registrar URIs in the order to try, the address-of-record user and the
// outbound credentials. Bad API data gives an error for that trunk, never a panic.
package trunk

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/sipmsg"
)

// URI is one registrar address of a trunk.
type URI struct {
	Host string
	// Port is 0 when the API gave none (5060 is used).
	Port int
	// Transport is "udp" or "tcp" (the only ones Routr's Requester can send).
	Transport string
	User      string
	// Priority and Weight order the URIs (the API's int32s: a URI is 64 bytes, a size
	// class of Go's allocator, where ints made it 72, in the 80-byte class).
	Priority int32
	Weight   int32
}

// Trunk is a trunk the registry must keep registered.
type Trunk struct {
	// Ref is the API's ref: printable, without control characters, spaces trimmed.
	Ref string
	// Name is the API's name, control characters and invalid UTF-8 removed.
	Name string
	// URIs are the usable URIs, best first (lowest priority value, then highest weight):
	// the enabled ones, or all of them when none is enabled (Read's warnings say so).
	URIs []URI
	// Username and Password are the outbound credentials (empty when none). Username holds
	// no control character and is valid UTF-8; it is kept as given (User escapes it).
	Username string
	Password string
}

// HasCredentials reports whether the trunk has outbound credentials.
func (t Trunk) HasCredentials() bool { return t.Username != "" && t.Password != "" }

// User is the AOR user for uri, as it goes into the URI's user part: its user part
// (already escaped by FromProto), else the credentials' username, escaped
// (sipmsg.EscapeUser). It is "" when there is neither, or when the username cannot be a
// user part (FromProto refuses such credentials).
func (t Trunk) User(u URI) string {
	if u.User != "" {
		return u.User
	}
	s, err := sipmsg.EscapeUser(t.Username)
	if err != nil {
		return ""
	}
	return s
}

// Equal reports whether t and o are the same trunk data.
func (t Trunk) Equal(o Trunk) bool {
	return t.Ref == o.Ref && t.Name == o.Name && t.Username == o.Username && t.Password == o.Password &&
		slices.Equal(t.URIs, o.URIs)
}

// Fingerprint changes when anything that identifies the binding changes: URIs, users
// or credentials. It is a hash: it never reveals the password.
//
// It is kept in the store with the binding, so its value must never change for the same
// trunk: the first 16 hex digits of the SHA-256 of, for each URI,
// "host|port|transport|user\n", then "username\x00password" (as fmt wrote them before the
// bytes were written by hand; TestFingerprintPinned holds the value).
func (t Trunk) Fingerprint() string {
	var stack [256]byte
	b := stack[:0]
	for _, u := range t.URIs {
		b = append(b, u.Host...)
		b = append(b, '|')
		b = strconv.AppendInt(b, int64(u.Port), 10)
		b = append(b, '|')
		b = append(b, u.Transport...)
		b = append(b, '|')
		b = append(b, u.User...)
		b = append(b, '\n')
	}
	b = append(b, t.Username...)
	b = append(b, 0)
	b = append(b, t.Password...)
	sum := sha256.Sum256(b)
	clear(b) // the password does not stay on the stack (or heap) longer than needed
	var out [16]byte
	hex.Encode(out[:], sum[:8])
	return string(out[:])
}

// ErrInvalid marks API data the registry cannot use.
var ErrInvalid = errors.New("invalid trunk")

// maxReasons bounds the reasons an error lists.
const maxReasons = 5

// FromProto validates an API trunk and normalises every value that ends in a SIP message
// (RFC 3261 §25.1). An error names the field, e.g. "uris[0].user: control character
// U+000D"; when the trunk can be read that far, the Trunk returned with it has its Ref
// and Name, so that the engine can show it as rejected with the reason.
//
//   - ref: printable UTF-8 (no control or format character), spaces trimmed, not empty.
//     A bad ref is an error with an empty Ref (it is a store key and a log field).
//   - name: not on the wire; control characters and invalid UTF-8 are removed (with a
//     warning), never an error.
//   - outbound_credentials.username: no control character, valid UTF-8 (it is the digest
//     username, X-Gateway-Auth's, and the AOR user of a URI without one); else an error.
//   - each URI: host is a hostname, an IPv4 address or an IPv6 address (bare or in
//     brackets; kept bare, so that net.JoinHostPort and sipmsg write "[::1]:5060"), or
//     host:port when the port field is 0 or the same; port 0 (5060) or 1..65535;
//     transport udp or tcp in any case, empty meaning udp (TLS, WS, WSS and SCTP cannot
//     be sent by Routr's Requester); user without control characters and valid UTF-8,
//     spaces trimmed, the rest escaped (sipmsg.EscapeUser); an AOR user, from the URI or
//     the credentials. A URI that fails is dropped, with the reason in Warnings; the trunk
//     is an error only when no usable URI remains, naming the reasons (the first first).
//
// Disabled URIs are skipped, unless no URI is enabled: then all of them are used, with
// a warning (Routr's file data server sends enabled=false when a file omits it, and
// Routr's own registry ignores the field).
func FromProto(p *trunksv2beta1.Trunk) (Trunk, error) {
	t, _, err := Read(p)
	return t, err
}

// Read is FromProto with the warnings of a usable trunk: what was not used as given,
// for the engine to log (the URIs dropped, with the reason; all URIs used because none
// is enabled; a name that had to be cleaned). Never a secret. The trunk does not keep
// them: at 100,000 trunks the engine keeps a Trunk per trunk.
func Read(p *trunksv2beta1.Trunk) (t Trunk, warnings []string, err error) {
	if p == nil {
		return Trunk{}, nil, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if err := checkRef(p.GetRef()); err != nil {
		return Trunk{}, nil, fmt.Errorf("%w: ref %q: %v", ErrInvalid, p.GetRef(), err)
	}
	t.Ref = strings.Trim(p.GetRef(), " ")
	if t.Ref == "" {
		return t, nil, fmt.Errorf("%w: no ref", ErrInvalid)
	}
	var cleaned bool
	t.Name, cleaned = cleanName(p.GetName())
	if c := p.GetOutboundCredentials(); c != nil {
		if _, err := sipmsg.EscapeUser(c.GetUsername()); err != nil {
			return t.packed(), nil, fmt.Errorf("%w: %s: outbound_credentials.username: %v", ErrInvalid, t.Ref, err)
		}
		t.Username, t.Password = c.GetUsername(), c.GetPassword()
	}
	uris := p.GetUris()
	allDisabled := len(uris) > 0 && !slices.ContainsFunc(uris, (*trunksv2beta1.TrunkURI).GetEnabled)
	if allDisabled {
		warnings = append(warnings, fmt.Sprintf("no URI is enabled: all %d used (Routr's file data server sends enabled=false when a file omits it)", len(uris)))
	}
	var skipped []string
	t.URIs = make([]URI, 0, len(uris))
	for i, u := range uris {
		if !u.GetEnabled() && !allDisabled {
			continue
		}
		v, reason := uriFrom(i, u, t.Username)
		if reason != "" {
			skipped = append(skipped, reason)
			continue
		}
		t.URIs = append(t.URIs, v)
	}
	slices.SortStableFunc(t.URIs, func(a, b URI) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return cmp.Compare(b.Weight, a.Weight)
	})
	if len(t.URIs) == 0 {
		t.URIs = nil // as before the slice was made ahead
		if len(skipped) > 0 {
			return t.packed(), nil, fmt.Errorf("%w: %s: no usable URI (%s)", ErrInvalid, t.Ref, joinReasons(skipped))
		}
		return t.packed(), nil, fmt.Errorf("%w: %s: no URI", ErrInvalid, t.Ref)
	}
	if t.User(t.URIs[0]) == "" {
		// Not reached: every URI kept has an AOR user.
		return t.packed(), nil, fmt.Errorf("%w: %s: no user for the address-of-record (neither the URI's user nor outbound credentials)", ErrInvalid, t.Ref)
	}
	for _, r := range skipped {
		warnings = append(warnings, "URI not used: "+r)
	}
	if cleaned {
		warnings = append(warnings, "name: control characters or invalid UTF-8 removed")
	}
	// The engine keeps the trunk as long as it is unchanged: its strings in one
	// allocation, not the decoded message's. Every return copies what it keeps from p
	// (packed, or fmt for the errors): p's strings may be views of a buffer that is
	// reused once FromProto returns (upstream.EachFindBy).
	return t.packed(), warnings, nil
}

// joinReasons lists the first maxReasons reasons.
func joinReasons(rs []string) string {
	if len(rs) <= maxReasons {
		return strings.Join(rs, "; ")
	}
	return strings.Join(rs[:maxReasons], "; ") + fmt.Sprintf("; and %d more", len(rs)-maxReasons)
}

// uriFrom validates the i-th API URI; reason says why it cannot be used.
func uriFrom(i int, u *trunksv2beta1.TrunkURI, username string) (URI, string) {
	field := func(name string) string { return fmt.Sprintf("uris[%d].%s", i, name) }
	host, port, reason := hostFrom(u.GetHost(), u.GetPort())
	if reason != "" {
		return URI{}, field("host") + ": " + reason
	}
	if port < 0 || port > 65535 {
		return URI{}, fmt.Sprintf("%s: bad port %d (0 for the default, else 1-65535)", field("port"), port)
	}
	tr := u.GetTransport()
	if err := checkControl(tr); err != nil {
		return URI{}, field("transport") + ": " + err.Error()
	}
	tr = strings.ToLower(strings.Trim(tr, " "))
	if tr == "" {
		tr = "udp"
	}
	if _, ok := sipmsg.TransportProto(tr); !ok {
		name := strings.ToUpper(tr)
		if strings.ContainsFunc(name, func(r rune) bool { return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9') }) {
			name = strconv.Quote(name)
		}
		return URI{}, fmt.Sprintf("%s: %s is not supported by Routr's Requester (udp or tcp)", field("transport"), name)
	}
	user, err := sipmsg.EscapeUser(strings.Trim(u.GetUser(), " "))
	if err != nil {
		return URI{}, field("user") + ": " + err.Error()
	}
	if user == "" && username == "" {
		return URI{}, fmt.Sprintf("uris[%d]: no user for the address-of-record (neither uris[%d].user nor outbound_credentials.username)", i, i)
	}
	return URI{Host: host, Port: int(port), Transport: tr, User: user, Priority: u.GetPriority(), Weight: u.GetWeight()}, ""
}

// hostFrom reads the host field (and the port field): a host, or host:port when the port
// field is 0 or the same port. IPv6 addresses come back without brackets.
func hostFrom(raw string, port int32) (string, int32, string) {
	if err := checkControl(raw); err != nil {
		return "", 0, err.Error()
	}
	h := strings.Trim(raw, " ")
	if hp, ps, err := net.SplitHostPort(h); err == nil {
		// Accept "host:port" in the host field, as some API data has it, unless the
		// port field says otherwise.
		n, perr := strconv.Atoi(ps)
		if perr != nil || n < 1 || n > 65535 || (port != 0 && int32(n) != port) {
			return "", 0, fmt.Sprintf("bad port in host %q (port field %d)", h, port)
		}
		if strings.HasPrefix(h, "[") {
			hp = "[" + hp + "]" // only an IPv6 address may be in brackets
		}
		host, err := sipmsg.ParseHost(hp)
		if err != nil {
			return "", 0, err.Error()
		}
		return host, int32(n), ""
	}
	host, err := sipmsg.ParseHost(h)
	if err != nil {
		return "", 0, err.Error()
	}
	return host, port, ""
}

// checkControl refuses ASCII control characters (NUL, CR, LF, HTAB, ... and DEL) and
// invalid UTF-8.
func checkControl(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character U+%04X", c)
		}
	}
	if !utf8.ValidString(s) {
		return errors.New("invalid UTF-8")
	}
	return nil
}

// checkRef refuses a ref that cannot be a store key and a log field: invalid UTF-8,
// control (C0, DEL, C1), format (such as U+200B, U+202E) or line-separator characters.
func checkRef(ref string) error {
	for i := 0; i < len(ref); {
		r, n := utf8.DecodeRuneInString(ref[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return errors.New("invalid UTF-8")
		case unicode.IsControl(r), unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			return fmt.Errorf("control character U+%04X", r)
		}
		i += n
	}
	return nil
}

// cleanName removes control characters and invalid UTF-8 from a name; cleaned says
// whether anything was removed.
func cleanName(name string) (string, bool) {
	if utf8.ValidString(name) && !strings.ContainsFunc(name, unicode.IsControl) {
		return name, false
	}
	out := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	return out, true
}
