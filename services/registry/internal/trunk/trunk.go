// Package trunk turns the Routr API's Trunk into what the registry needs to register
// it: the registrar URIs in the order to try, the address-of-record user and the
// outbound credentials. Bad API data gives an error for that trunk, never a panic.
package trunk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
)

// URI is one registrar address of a trunk.
type URI struct {
	Host string
	// Port is 0 when the API gave none (5060 is used).
	Port int
	// Transport is "udp" or "tcp" (the only ones Routr's Requester can send).
	Transport string
	User      string
	Priority  int
	Weight    int
}

// Trunk is a trunk the registry must keep registered.
type Trunk struct {
	Ref  string
	Name string
	// URIs are the enabled URIs, best first (lowest priority value, then highest weight).
	URIs []URI
	// Username and Password are the outbound credentials (empty when none).
	Username string
	Password string
}

// HasCredentials reports whether the trunk has outbound credentials.
func (t Trunk) HasCredentials() bool { return t.Username != "" && t.Password != "" }

// User is the AOR user for uri: its user part, else the credentials' username.
func (t Trunk) User(u URI) string {
	if u.User != "" {
		return u.User
	}
	return t.Username
}

// Equal reports whether t and o are the same trunk data.
func (t Trunk) Equal(o Trunk) bool {
	return t.Ref == o.Ref && t.Name == o.Name && t.Username == o.Username && t.Password == o.Password &&
		slices.Equal(t.URIs, o.URIs)
}

// Fingerprint changes when anything that identifies the binding changes: URIs, users
// or credentials. It is a hash: it never reveals the password.
func (t Trunk) Fingerprint() string {
	h := sha256.New()
	for _, u := range t.URIs {
		fmt.Fprintf(h, "%s|%d|%s|%s\n", u.Host, u.Port, u.Transport, u.User)
	}
	fmt.Fprintf(h, "%s\x00%s", t.Username, t.Password)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ErrInvalid marks API data the registry cannot use.
var ErrInvalid = errors.New("invalid trunk")

// FromProto validates an API trunk. Disabled URIs are skipped; URIs with a transport
// Routr's Requester cannot send (TLS, WS, WSS, SCTP) are skipped too, and a trunk left
// with none is invalid, with the reason.
func FromProto(p *trunksv2beta1.Trunk) (Trunk, error) {
	if p == nil {
		return Trunk{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	t := Trunk{Ref: strings.TrimSpace(p.GetRef()), Name: p.GetName()}
	if t.Ref == "" {
		return t, fmt.Errorf("%w: no ref", ErrInvalid)
	}
	if c := p.GetOutboundCredentials(); c != nil {
		t.Username, t.Password = c.GetUsername(), c.GetPassword()
	}
	var skipped []string
	for i, u := range p.GetUris() {
		if !u.GetEnabled() {
			continue
		}
		host := strings.TrimSpace(u.GetHost())
		if host == "" || strings.ContainsAny(host, " \t\r\n;,<>\"@") {
			skipped = append(skipped, fmt.Sprintf("uris[%d]: bad host %q", i, host))
			continue
		}
		if h, p, err := net.SplitHostPort(host); err == nil {
			// Accept "host:port" in the host field, as some API data has it, unless the
			// port field says otherwise.
			n, perr := strconv.Atoi(p)
			if perr != nil || n < 1 || n > 65535 || (u.GetPort() != 0 && int32(n) != u.GetPort()) {
				skipped = append(skipped, fmt.Sprintf("uris[%d]: bad port in host %q", i, host))
				continue
			}
			host = h
			u = &trunksv2beta1.TrunkURI{Host: h, Port: int32(n), Transport: u.GetTransport(), User: u.GetUser(),
				Priority: u.GetPriority(), Weight: u.GetWeight(), Enabled: true}
		}
		if u.GetPort() < 0 || u.GetPort() > 65535 {
			skipped = append(skipped, fmt.Sprintf("uris[%d]: bad port %d", i, u.GetPort()))
			continue
		}
		tr := strings.ToLower(strings.TrimSpace(u.GetTransport()))
		if tr == "" {
			tr = "udp"
		}
		if tr != "udp" && tr != "tcp" {
			skipped = append(skipped, fmt.Sprintf("uris[%d]: transport %s is not supported by Routr's Requester (udp or tcp)", i, strings.ToUpper(tr)))
			continue
		}
		if strings.TrimSpace(u.GetUser()) == "" && t.Username == "" {
			skipped = append(skipped, fmt.Sprintf("uris[%d]: no user for the address-of-record", i))
			continue
		}
		t.URIs = append(t.URIs, URI{Host: host, Port: int(u.GetPort()), Transport: tr, User: strings.TrimSpace(u.GetUser()),
			Priority: int(u.GetPriority()), Weight: int(u.GetWeight())})
	}
	slices.SortStableFunc(t.URIs, func(a, b URI) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return b.Weight - a.Weight
	})
	if len(t.URIs) == 0 {
		if len(skipped) > 0 {
			return t, fmt.Errorf("%w: %s: no usable URI (%s)", ErrInvalid, t.Ref, strings.Join(skipped, "; "))
		}
		return t, fmt.Errorf("%w: %s: no enabled URI", ErrInvalid, t.Ref)
	}
	if t.User(t.URIs[0]) == "" {
		return t, fmt.Errorf("%w: %s: no user for the address-of-record (neither the URI's user nor outbound credentials)", ErrInvalid, t.Ref)
	}
	return t, nil
}
