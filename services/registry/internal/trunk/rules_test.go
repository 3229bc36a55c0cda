package trunk_test

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

// The user part: characters outside the RFC 3261 user grammar are escaped, valid %XX is
// kept, control characters and invalid UTF-8 are refused.
func TestFromProtoUser(t *testing.T) {
	ok := []struct{ in, want string }{
		{"1001", "1001"},
		{" alice ", "alice"},
		{"alice smith", "alice%20smith"},
		{"alice@example.com", "alice%40example.com"},
		{"<alice>", "%3Calice%3E"},
		{`"alice"`, "%22alice%22"},
		{"alice:secret", "alice%3Asecret"},
		{"josé", "jos%C3%A9"},
		{"%41lice", "%41lice"},
		{"%4", "%254"},
		{"100%", "100%25"},
		{"+1;x?y/z&=$,-_.!~*'()", "+1;x?y/z&=$,-_.!~*'()"},
		{"[a]#", "%5Ba%5D%23"},
	}
	for _, tt := range ok {
		got, warnings, err := trunk.Read(apiTrunk(nil, uri("sip.example.com", 0, "udp", tt.in, 0, 0)))
		if err != nil {
			t.Errorf("user %q: %v", tt.in, err)
			continue
		}
		if u := got.URIs[0].User; u != tt.want {
			t.Errorf("user %q = %q, want %q", tt.in, u, tt.want)
		}
		if len(warnings) != 0 {
			t.Errorf("user %q: warnings %q", tt.in, warnings)
		}
	}
	bad := []struct{ in, want string }{
		{"alice\r\nX-Injected: yes", "uris[0].user: control character U+000D"},
		{"alice\nX-Injected: yes", "uris[0].user: control character U+000A"},
		{"al\x00ice", "uris[0].user: control character U+0000"},
		{"al\tice", "uris[0].user: control character U+0009"},
		{"al\x7fice", "uris[0].user: control character U+007F"},
		{"al\xffice", "uris[0].user: invalid UTF-8"},
	}
	for _, tt := range bad {
		_, err := trunk.FromProto(apiTrunk(creds("alice", "pw"), uri("sip.example.com", 0, "udp", tt.in, 0, 0)))
		if !errors.Is(err, trunk.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("user %q: error %v, want one containing %q", tt.in, err, tt.want)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n\x00") {
			t.Errorf("user %q: the error %q holds a control character", tt.in, err)
		}
	}
}

// The credentials' username: kept as given (digest, X-Gateway-Auth), escaped as the AOR
// user; a control character makes the trunk unusable.
func TestFromProtoUsername(t *testing.T) {
	got, err := trunk.FromProto(apiTrunk(creds("alice smith@corp", "pw"), uri("sip.example.com", 0, "udp", "", 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice smith@corp" {
		t.Errorf("Username = %q, want it as given", got.Username)
	}
	if u := got.User(got.URIs[0]); u != "alice%20smith%40corp" {
		t.Errorf("User = %q, want the escaped username", u)
	}
	for _, name := range []string{"alice\r\nX-Injected: yes", "al\x00ice", "al\xffice"} {
		tr, err := trunk.FromProto(apiTrunk(creds(name, "pw"), uri("sip.example.com", 0, "udp", "1001", 0, 0)))
		if !errors.Is(err, trunk.ErrInvalid) || !strings.Contains(err.Error(), "trunk-1: outbound_credentials.username: ") {
			t.Errorf("username %q: error %v", name, err)
		}
		if tr.Ref != "trunk-1" || tr.Name != "Provider" {
			t.Errorf("username %q: the trunk returned with the error lacks its ref or name: %+v", name, tr)
		}
	}
	// A username with no character to escape is its own AOR user.
	if u := (trunk.Trunk{Username: "alice"}).User(trunk.URI{}); u != "alice" {
		t.Errorf("User = %q", u)
	}
	// A username that FromProto would refuse gives no AOR user rather than a bad one.
	if u := (trunk.Trunk{Username: "a\r\nb"}).User(trunk.URI{}); u != "" {
		t.Errorf("User of a username with CRLF = %q", u)
	}
}

// Hosts: hostname, IPv4, IPv6 (bare or in brackets, kept bare), host:port; anything else
// drops the URI.
func TestFromProtoHost(t *testing.T) {
	ok := []struct {
		in       string
		port     int32
		wantHost string
		wantPort int
	}{
		{"sip.example.com", 0, "sip.example.com", 0},
		{"sip.example.com.", 0, "sip.example.com.", 0},
		{"SIP-1.Example.COM", 5060, "SIP-1.Example.COM", 5060},
		{"localhost", 0, "localhost", 0},
		{"1und1.de", 0, "1und1.de", 0},
		{"10.0.0.1", 0, "10.0.0.1", 0},
		{"10.0.0.1:5080", 0, "10.0.0.1", 5080},
		{"::1", 0, "::1", 0},
		{"[::1]", 5062, "::1", 5062},
		{"[::1]:5080", 0, "::1", 5080},
		{"[::1]:5080", 5080, "::1", 5080},
		{"2001:DB8::1", 0, "2001:DB8::1", 0},
		{"::ffff:10.0.0.1", 0, "::ffff:10.0.0.1", 0},
		{" [2001:db8::1] ", 0, "2001:db8::1", 0},
	}
	for _, tt := range ok {
		got, err := trunk.FromProto(apiTrunk(creds("alice", "pw"), uri(tt.in, tt.port, "udp", "", 0, 0)))
		if err != nil {
			t.Errorf("host %q: %v", tt.in, err)
			continue
		}
		if u := got.URIs[0]; u.Host != tt.wantHost || u.Port != tt.wantPort {
			t.Errorf("host %q port %d = %q %d, want %q %d", tt.in, tt.port, u.Host, u.Port, tt.wantHost, tt.wantPort)
		}
	}
	bad := []struct{ in, want string }{
		{"sip\x00.example.com", "uris[0].host: control character U+0000"},
		{"sip.example.com\x00", "uris[0].host: control character U+0000"},
		{"sip\v.example.com", "uris[0].host: control character U+000B"},
		{"sip.example.com\r\nX-Injected: yes", "uris[0].host: control character U+000D"},
		{"", "uris[0].host: empty"},
		{"sip example.com", "is not a hostname"},
		{"alice@sip.example.com", "is not a hostname"},
		{"sip.example.com/path", "is not a hostname"},
		{"-sip.example.com", "is not a hostname"},
		{"sip_1.example.com", "is not a hostname"},
		{"sip..example.com", "is not a hostname"},
		{"sip.123", "is not a hostname"},
		{"1.2.3", "is not a hostname"},
		{"256.1.1.1", "is not a hostname"},
		{"[sip.example.com]", "is not an IPv6 address"},
		{"[sip.example.com]:5060", "is not an IPv6 address"},
		{"fe80::1%eth0", "is not an IPv6 address"},
		{"[::1", "unterminated"},
		{"::1]", "is not an IPv6 address"},
		{"a:b:c", "is not an IPv6 address"},
		{"[::1]:0", "bad port in host"},
		{"[::1]:5080x", "bad port in host"},
		{"sip.example.com:5080", "bad port in host"}, // the port field says 5060
		{"sip\xff.example.com", "uris[0].host: invalid UTF-8"},
	}
	for _, tt := range bad {
		port := int32(0)
		if tt.in == "sip.example.com:5080" {
			port = 5060
		}
		_, err := trunk.FromProto(apiTrunk(creds("alice", "pw"), uri(tt.in, port, "udp", "", 0, 0)))
		if !errors.Is(err, trunk.ErrInvalid) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "uris[0].host: ") {
			t.Errorf("host %q: error %v, want one containing %q", tt.in, err, tt.want)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n\x00\v") {
			t.Errorf("host %q: the error %q holds a control character", tt.in, err)
		}
	}
}

// IPv6 all the way: the engine's target (net.JoinHostPort, as in reconcile), the AOR
// and the REGISTER are written with brackets.
func TestIPv6Registrar(t *testing.T) {
	for _, host := range []string{"::1", "[::1]"} {
		tr, err := trunk.FromProto(apiTrunk(creds("alice", "pw"), uri(host, 0, "udp", "", 0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		u := tr.URIs[0]
		if got := net.JoinHostPort(u.Host, strconv.Itoa(5060)); got != "[::1]:5060" {
			t.Errorf("%s: engine target %q", host, got)
		}
		if got := sipmsg.AOR(tr.User(u), u.Host); got != "sip:alice@[::1]" {
			t.Errorf("%s: AOR %q", host, got)
		}
		reg := sipmsg.Register{Domain: u.Host, Port: u.Port, Transport: u.Transport, User: tr.User(u),
			CallID: "c@sipreg", FromTag: "t", EdgePortHost: "2001:db8::5", EdgePortPort: 5060}
		req, err := sipmsg.BuildChecked(reg)
		if err != nil {
			t.Fatalf("%s: BuildChecked: %v", host, err)
		}
		msg := req.GetMessage()
		if req.GetTarget() != "[::1]:5060" || reg.RequestURI() != "sip:[::1]:5060;transport=udp" ||
			msg.GetRequestUri().GetHost() != "[::1]" || msg.GetFrom().GetAddress().GetUri().GetHost() != "[::1]" ||
			msg.GetRoute()[0].GetAddress().GetUri().GetHost() != "[2001:db8::5]" {
			t.Errorf("%s: target %q, request uri %v, from %v, route %v", host, req.GetTarget(), msg.GetRequestUri(),
				msg.GetFrom(), msg.GetRoute())
		}
		// The engine's unregister reads the domain back from the AOR: bracketed.
		again := reg
		again.Domain = "[::1]"
		if got := sipmsg.Build(again); got.GetTarget() != "[::1]:5060" || got.GetMessage().GetRequestUri().GetHost() != "[::1]" {
			t.Errorf("Domain [::1]: target %q, request uri %v", got.GetTarget(), got.GetMessage().GetRequestUri())
		}
	}
}

func TestFromProtoTransport(t *testing.T) {
	for _, tr := range []string{"udp\r\n", "\x00tcp", "u\x7fdp"} {
		_, err := trunk.FromProto(apiTrunk(creds("alice", "pw"), uri("sip.example.com", 0, tr, "", 0, 0)))
		if err == nil || !strings.Contains(err.Error(), "uris[0].transport: control character") {
			t.Errorf("transport %q: error %v", tr, err)
		}
	}
	_, err := trunk.FromProto(apiTrunk(creds("alice", "pw"), uri("sip.example.com", 0, "u dp;x", "", 0, 0)))
	if err == nil || !strings.Contains(err.Error(), `uris[0].transport: "U DP;X" is not supported`) {
		t.Errorf("transport with a space: error %v", err)
	}
}

func TestFromProtoRef(t *testing.T) {
	for _, ref := range []string{"trunk\r\n1", "trunk\x001", "\ttrunk", "trunk\u202e1", "trunk\u20281", "trunk\u00851", "trunk\xff"} {
		got, err := trunk.FromProto(&trunksv2beta1.Trunk{Ref: ref, Uris: []*trunksv2beta1.TrunkURI{uri("a.example", 0, "udp", "bob", 0, 0)}})
		if !errors.Is(err, trunk.ErrInvalid) || !strings.Contains(err.Error(), "ref ") {
			t.Errorf("ref %q: error %v", ref, err)
			continue
		}
		if got.Ref != "" {
			t.Errorf("ref %q: Ref %q returned with the error, want none", ref, got.Ref)
		}
		if strings.ContainsAny(err.Error(), "\r\n\x00\t\u202e\u2028\u0085") {
			t.Errorf("ref %q: the error %q holds the control character", ref, err)
		}
	}
	for _, ref := range []string{"trunk-1", " trunk 1 ", "trönk·1"} {
		got, err := trunk.FromProto(&trunksv2beta1.Trunk{Ref: ref, Uris: []*trunksv2beta1.TrunkURI{uri("a.example", 0, "udp", "bob", 0, 0)}})
		if err != nil || got.Ref != strings.Trim(ref, " ") {
			t.Errorf("ref %q: %q, %v", ref, got.Ref, err)
		}
	}
}

// The name is not on the wire: control characters and invalid UTF-8 are removed, with a
// warning; the trunk stays usable.
func TestFromProtoName(t *testing.T) {
	in := apiTrunk(creds("alice", "pw"), uri("a.example", 0, "udp", "", 0, 0))
	in.Name = "Pro\r\nvider\x00 \u0085one\xff"
	got, warnings, err := trunk.Read(in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Provider one" {
		t.Errorf("Name = %q", got.Name)
	}
	if !slices.Equal(warnings, []string{"name: control characters or invalid UTF-8 removed"}) {
		t.Errorf("Warnings = %q", warnings)
	}
	in.Name = "Provider ü"
	if got, warnings, _ := trunk.Read(in); got.Name != "Provider ü" || len(warnings) != 0 {
		t.Errorf("a clean name changed: %q %q", got.Name, warnings)
	}
}

// A URI with an unusable host, user or transport is dropped with a reason; the trunk is
// an error only when none remains, and the error names the first reason first.
func TestFromProtoDropsBadURIs(t *testing.T) {
	in := apiTrunk(creds("alice", "pw"),
		uri("bad\x00host", 0, "udp", "", 0, 0),
		uri("b.example", 0, "udp", "bob\r\nX: 1", 1, 0),
		uri("c.example", 0, "udp", "carol", 2, 0),
	)
	got, warnings, err := trunk.Read(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.URIs) != 1 || got.URIs[0].Host != "c.example" || got.URIs[0].User != "carol" {
		t.Errorf("URIs = %+v", got.URIs)
	}
	want := []string{"URI not used: uris[0].host: control character U+0000", "URI not used: uris[1].user: control character U+000D"}
	if !slices.Equal(warnings, want) {
		t.Errorf("Warnings = %q, want %q", warnings, want)
	}

	in.Uris = in.Uris[:2]
	_, err = trunk.FromProto(in)
	if err == nil || !strings.Contains(err.Error(), "trunk-1: no usable URI (uris[0].host: control character U+0000; uris[1].user: control character U+000D)") {
		t.Errorf("error %v", err)
	}

	// Many reasons: the first five, and a count.
	var many []*trunksv2beta1.TrunkURI
	for range 8 {
		many = append(many, uri("tls.example", 0, "tls", "", 0, 0))
	}
	_, err = trunk.FromProto(apiTrunk(creds("alice", "pw"), many...))
	if err == nil || !strings.Contains(err.Error(), "uris[4].transport") || strings.Contains(err.Error(), "uris[5]") ||
		!strings.HasSuffix(err.Error(), "; and 3 more)") {
		t.Errorf("error %v", err)
	}
}

// Disabled URIs are skipped when at least one is enabled, even when the enabled ones
// are unusable; with none enabled, all are used.
func TestFromProtoEnabled(t *testing.T) {
	got, warnings, err := trunk.Read(apiTrunk(creds("alice", "pw"),
		disabled(uri("off.example", 0, "udp", "", 0, 100)),
		uri("on.example", 0, "udp", "", 5, 0)))
	if err != nil || len(got.URIs) != 1 || got.URIs[0].Host != "on.example" || len(warnings) != 0 {
		t.Errorf("one enabled: %+v, %v", got, err)
	}
	_, err = trunk.FromProto(apiTrunk(creds("alice", "pw"),
		disabled(uri("off.example", 0, "udp", "", 0, 0)),
		uri("on.example", 0, "tls", "", 0, 0)))
	if err == nil || !strings.Contains(err.Error(), "uris[1].transport: TLS") {
		t.Errorf("the only enabled URI unusable: %v", err)
	}
	got, warnings, err = trunk.Read(apiTrunk(creds("alice", "pw"),
		disabled(uri("c.example", 0, "udp", "", 1, 10)),
		disabled(uri("tls.example", 0, "tls", "", 0, 0)),
		disabled(uri("b.example", 0, "udp", "", 1, 50)),
		disabled(uri("a.example", 0, "udp", "", 0, 0))))
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, u := range got.URIs {
		hosts = append(hosts, u.Host)
	}
	if !slices.Equal(hosts, []string{"a.example", "b.example", "c.example"}) || len(warnings) != 2 ||
		!strings.HasPrefix(warnings[0], "no URI is enabled: all 4 used") || !strings.Contains(warnings[1], "uris[1].transport: TLS") {
		t.Errorf("none enabled: %+v %q", got, warnings)
	}
}
