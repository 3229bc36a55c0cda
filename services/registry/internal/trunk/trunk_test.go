package trunk_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	"sipreg.dev/services/registry/internal/trunk"
)

func uri(host string, port int32, transport, user string, priority, weight int32) *trunksv2beta1.TrunkURI {
	return &trunksv2beta1.TrunkURI{Host: host, Port: port, Transport: transport, User: user, Priority: priority, Weight: weight, Enabled: true}
}

func disabled(u *trunksv2beta1.TrunkURI) *trunksv2beta1.TrunkURI { u.Enabled = false; return u }

func creds(username, password string) *credentialsv2beta1.Credentials {
	return &credentialsv2beta1.Credentials{Ref: "cred-1", Username: username, Password: password}
}

func apiTrunk(cred *credentialsv2beta1.Credentials, uris ...*trunksv2beta1.TrunkURI) *trunksv2beta1.Trunk {
	return &trunksv2beta1.Trunk{Ref: "trunk-1", Name: "Provider", SendRegister: true, OutboundCredentials: cred, Uris: uris}
}

func TestFromProto(t *testing.T) {
	tests := []struct {
		name     string
		in       *trunksv2beta1.Trunk
		want     trunk.Trunk
		wantErr  []string // substrings of an ErrInvalid error; nil for success
		wantUser string   // the AOR user of the first URI
		warnings []string // Read's
	}{
		{
			name: "one uri, credentials",
			in:   apiTrunk(creds("alice", "s3cret"), uri("sip.provider.net", 5060, "UDP", "", 0, 0)),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "s3cret",
				URIs: []trunk.URI{{Host: "sip.provider.net", Port: 5060, Transport: "udp"}}},
			wantUser: "alice",
		},
		{
			name: "sorted by priority, then by weight (highest first)",
			in: apiTrunk(creds("alice", "pw"),
				uri("c.example", 0, "udp", "", 2, 100),
				uri("b.example", 0, "udp", "", 1, 10),
				uri("a.example", 0, "udp", "", 1, 50),
				uri("d.example", 0, "udp", "", 0, 1),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw", URIs: []trunk.URI{
				{Host: "d.example", Transport: "udp", Priority: 0, Weight: 1},
				{Host: "a.example", Transport: "udp", Priority: 1, Weight: 50},
				{Host: "b.example", Transport: "udp", Priority: 1, Weight: 10},
				{Host: "c.example", Transport: "udp", Priority: 2, Weight: 100},
			}},
			wantUser: "alice",
		},
		{
			name: "equal priority and weight keep the API's order",
			in: apiTrunk(creds("alice", "pw"),
				uri("first.example", 0, "udp", "", 1, 1),
				uri("second.example", 0, "udp", "", 1, 1),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw", URIs: []trunk.URI{
				{Host: "first.example", Transport: "udp", Priority: 1, Weight: 1},
				{Host: "second.example", Transport: "udp", Priority: 1, Weight: 1},
			}},
			wantUser: "alice",
		},
		{
			name: "disabled uris skipped",
			in: apiTrunk(creds("alice", "pw"),
				disabled(uri("off.example", 5060, "udp", "", 0, 0)),
				uri("on.example", 5060, "udp", "", 1, 0),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{{Host: "on.example", Port: 5060, Transport: "udp", Priority: 1}}},
			wantUser: "alice",
		},
		{
			// Routr's file data server sends enabled=false when a file omits the field:
			// with no URI enabled, all of them are used (in the usual order).
			name: "all uris disabled: all used",
			in: apiTrunk(creds("alice", "pw"),
				disabled(uri("b.example", 5060, "udp", "", 1, 0)),
				disabled(uri("a.example", 5060, "udp", "", 0, 0))),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{
					{Host: "a.example", Port: 5060, Transport: "udp"},
					{Host: "b.example", Port: 5060, Transport: "udp", Priority: 1},
				}},
			warnings: []string{"no URI is enabled: all 2 used (Routr's file data server sends enabled=false when a file omits it)"},
			wantUser: "alice",
		},
		{
			name:    "no uris",
			in:      apiTrunk(creds("alice", "pw")),
			wantErr: []string{"trunk-1", "no URI"},
		},
		{
			name: "TLS and WS skipped",
			in: apiTrunk(creds("alice", "pw"),
				uri("tls.example", 5061, "TLS", "", 0, 0),
				uri("ws.example", 443, "WS", "", 0, 0),
				uri("tcp.example", 5060, "TCP", "", 1, 0),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{{Host: "tcp.example", Port: 5060, Transport: "tcp", Priority: 1}}},
			warnings: []string{
				"URI not used: uris[0].transport: TLS is not supported by Routr's Requester (udp or tcp)",
				"URI not used: uris[1].transport: WS is not supported by Routr's Requester (udp or tcp)",
			},
			wantUser: "alice",
		},
		{
			name:    "only TLS: invalid, with the reason",
			in:      apiTrunk(creds("alice", "pw"), uri("tls.example", 5061, "TLS", "", 0, 0)),
			wantErr: []string{"trunk-1", "uris[0]", "TLS", "not supported"},
		},
		{
			name: "only unusable transports: every reason",
			in: apiTrunk(creds("alice", "pw"),
				uri("tls.example", 5061, "tls", "", 0, 0),
				uri("wss.example", 443, "WSS", "", 0, 0),
				uri("sctp.example", 5060, "sctp", "", 0, 0),
			),
			wantErr: []string{"uris[0].transport: TLS", "uris[1].transport: WSS", "uris[2].transport: SCTP"},
		},
		{
			name: "transport in any case, empty means udp",
			in: apiTrunk(creds("alice", "pw"),
				uri("a.example", 0, "UDP", "", 0, 0),
				uri("b.example", 0, "Tcp", "", 1, 0),
				uri("c.example", 0, " tcp ", "", 2, 0),
				uri("d.example", 0, "", "", 3, 0),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw", URIs: []trunk.URI{
				{Host: "a.example", Transport: "udp"},
				{Host: "b.example", Transport: "tcp", Priority: 1},
				{Host: "c.example", Transport: "tcp", Priority: 2},
				{Host: "d.example", Transport: "udp", Priority: 3},
			}},
			wantUser: "alice",
		},
		{
			name: "host:port in host with port 0",
			in:   apiTrunk(creds("alice", "pw"), uri("sip.provider.net:5080", 0, "udp", "", 0, 0)),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{{Host: "sip.provider.net", Port: 5080, Transport: "udp"}}},
			wantUser: "alice",
		},
		{
			name:    "host:port in host with a bad port",
			in:      apiTrunk(creds("alice", "pw"), uri("sip.provider.net:0", 0, "udp", "", 0, 0)),
			wantErr: []string{"uris[0]", "bad port in host"},
		},
		{
			name:    "host:port in host with a port that is not a number",
			in:      apiTrunk(creds("alice", "pw"), uri("sip.provider.net:sip", 0, "udp", "", 0, 0)),
			wantErr: []string{"uris[0]", "bad port in host"},
		},
		{
			// The host field says one port, the port field another: the URI cannot be
			// used as given (today the host is kept with its ":5080" and the target
			// becomes "[sip.provider.net:5080]:5060").
			name:    "host:port in host conflicting with the port",
			in:      apiTrunk(creds("alice", "pw"), uri("sip.provider.net:5080", 5060, "udp", "", 0, 0)),
			wantErr: []string{"uris[0]"},
		},
		{
			name: "host:port in host agreeing with the port",
			in:   apiTrunk(creds("alice", "pw"), uri("sip.provider.net:5060", 5060, "udp", "", 0, 0)),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{{Host: "sip.provider.net", Port: 5060, Transport: "udp"}}},
			wantUser: "alice",
		},
		{
			name: "bad hosts skipped",
			in: apiTrunk(creds("alice", "pw"),
				uri("", 5060, "udp", "", 0, 0),
				uri("   ", 5060, "udp", "", 0, 0),
				uri("bad host", 5060, "udp", "", 0, 0),
				uri("alice@sip.example", 5060, "udp", "", 0, 0),
				uri("sip.example;transport=tcp", 5060, "udp", "", 0, 0),
				uri("<sip.example>", 5060, "udp", "", 0, 0),
				uri(" good.example ", 5060, "udp", "", 1, 0),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{{Host: "good.example", Port: 5060, Transport: "udp", Priority: 1}}},
			warnings: []string{
				"URI not used: uris[0].host: empty",
				"URI not used: uris[1].host: empty",
				`URI not used: uris[2].host: "bad host" is not a hostname, IPv4 or IPv6 address`,
				`URI not used: uris[3].host: "alice@sip.example" is not a hostname, IPv4 or IPv6 address`,
				`URI not used: uris[4].host: "sip.example;transport=tcp" is not a hostname, IPv4 or IPv6 address`,
				`URI not used: uris[5].host: "<sip.example>" is not a hostname, IPv4 or IPv6 address`,
			},
			wantUser: "alice",
		},
		{
			name:    "only a bad host",
			in:      apiTrunk(creds("alice", "pw"), uri("bad host", 5060, "udp", "", 0, 0)),
			wantErr: []string{`uris[0].host: "bad host" is not a hostname`},
		},
		{
			name: "bad ports skipped",
			in: apiTrunk(creds("alice", "pw"),
				uri("neg.example", -1, "udp", "", 0, 0),
				uri("big.example", 70000, "udp", "", 0, 0),
			),
			wantErr: []string{"uris[0].port: bad port -1", "uris[1].port: bad port 70000"},
		},
		{
			name:    "no ref",
			in:      &trunksv2beta1.Trunk{Name: "x", Uris: []*trunksv2beta1.TrunkURI{uri("a.example", 0, "udp", "alice", 0, 0)}},
			wantErr: []string{"no ref"},
		},
		{
			name:    "blank ref",
			in:      &trunksv2beta1.Trunk{Ref: "  ", Uris: []*trunksv2beta1.TrunkURI{uri("a.example", 0, "udp", "alice", 0, 0)}},
			wantErr: []string{"no ref"},
		},
		{
			name:    "nil trunk",
			in:      nil,
			wantErr: []string{"empty"},
		},
		{
			name:     "ref trimmed",
			in:       &trunksv2beta1.Trunk{Ref: " trunk-2 ", Uris: []*trunksv2beta1.TrunkURI{uri("a.example", 0, "udp", "bob", 0, 0)}},
			want:     trunk.Trunk{Ref: "trunk-2", URIs: []trunk.URI{{Host: "a.example", Transport: "udp", User: "bob"}}},
			wantUser: "bob",
		},
		{
			name:    "no user anywhere",
			in:      apiTrunk(nil, uri("sip.provider.net", 5060, "udp", "", 0, 0)),
			wantErr: []string{"trunk-1", "no user"},
		},
		{
			name:    "credentials without username",
			in:      apiTrunk(creds("", "pw"), uri("sip.provider.net", 5060, "udp", "  ", 0, 0)),
			wantErr: []string{"trunk-1", "no user"},
		},
		{
			name: "user from the uri, no credentials",
			in:   apiTrunk(nil, uri("sip.provider.net", 5060, "udp", " 1001 ", 0, 0)),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider",
				URIs: []trunk.URI{{Host: "sip.provider.net", Port: 5060, Transport: "udp", User: "1001"}}},
			wantUser: "1001",
		},
		{
			name: "user from the uri wins over the credentials",
			in:   apiTrunk(creds("alice", "pw"), uri("sip.provider.net", 5060, "udp", "1001", 0, 0)),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "pw",
				URIs: []trunk.URI{{Host: "sip.provider.net", Port: 5060, Transport: "udp", User: "1001"}}},
			wantUser: "1001",
		},
		{
			// The reconciler fails over to the next URI: each kept URI must have an AOR
			// user, or the REGISTER goes out as sip:host.
			name: "a later uri without any user is not kept",
			in: apiTrunk(nil,
				uri("primary.example", 5060, "udp", "1001", 0, 0),
				uri("backup.example", 5060, "udp", "", 1, 0),
			),
			want: trunk.Trunk{Ref: "trunk-1", Name: "Provider",
				URIs: []trunk.URI{{Host: "primary.example", Port: 5060, Transport: "udp", User: "1001"}}},
			warnings: []string{"URI not used: uris[1]: no user for the address-of-record (neither uris[1].user nor outbound_credentials.username)"},
			wantUser: "1001",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := trunk.Read(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, trunk.ErrInvalid) {
					t.Fatalf("FromProto = %+v, %v; want ErrInvalid", got, err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), `"pw"`) {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromProto: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromProto =\n %+v\nwant\n %+v", got, tt.want)
			}
			if !slices.Equal(warnings, tt.warnings) {
				t.Errorf("warnings %q, want %q", warnings, tt.warnings)
			}
			if u := got.User(got.URIs[0]); u != tt.wantUser {
				t.Errorf("User(URIs[0]) = %q, want %q", u, tt.wantUser)
			}
			for i, u := range got.URIs {
				if got.User(u) == "" {
					t.Errorf("URIs[%d] %+v has no AOR user", i, u)
				}
				if strings.Contains(u.Host, ":") {
					t.Errorf("URIs[%d] host %q still holds a port", i, u.Host)
				}
				if u.Transport != "udp" && u.Transport != "tcp" {
					t.Errorf("URIs[%d] transport %q", i, u.Transport)
				}
			}
		})
	}
}

func TestHasCredentials(t *testing.T) {
	tests := []struct {
		username, password string
		want               bool
	}{
		{"alice", "pw", true},
		{"alice", "", false},
		{"", "pw", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := (trunk.Trunk{Username: tt.username, Password: tt.password}).HasCredentials(); got != tt.want {
			t.Errorf("HasCredentials(%q, %q) = %v", tt.username, tt.password, got)
		}
	}
}

func TestFingerprint(t *testing.T) {
	base := trunk.Trunk{Ref: "trunk-1", Name: "Provider", Username: "alice", Password: "s3cret-password",
		URIs: []trunk.URI{{Host: "sip.provider.net", Port: 5060, Transport: "udp", User: "1001"}}}
	fp := base.Fingerprint()
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Errorf("Fingerprint = %q, want 16 hex digits", fp)
	}
	if fp != base.Fingerprint() {
		t.Error("Fingerprint is not stable")
	}
	for _, secret := range []string{base.Password, "s3cret"} {
		if strings.Contains(fp, secret) {
			t.Errorf("Fingerprint %q contains the password", fp)
		}
	}

	change := map[string]func(*trunk.Trunk){
		"password":      func(t *trunk.Trunk) { t.Password = "other" },
		"username":      func(t *trunk.Trunk) { t.Username = "bob" },
		"uri host":      func(t *trunk.Trunk) { t.URIs[0].Host = "sip2.provider.net" },
		"uri port":      func(t *trunk.Trunk) { t.URIs[0].Port = 5080 },
		"uri transport": func(t *trunk.Trunk) { t.URIs[0].Transport = "tcp" },
		"uri user":      func(t *trunk.Trunk) { t.URIs[0].User = "1002" },
		"another uri":   func(t *trunk.Trunk) { t.URIs = append(t.URIs, trunk.URI{Host: "b.example", Transport: "udp"}) },
		// Moving characters between username and password must not give the same hash.
		"user/password boundary": func(t *trunk.Trunk) { t.Username, t.Password = "alices", "3cret-password" },
	}
	for name, f := range change {
		c := base
		c.URIs = append([]trunk.URI(nil), base.URIs...)
		f(&c)
		if c.Fingerprint() == fp {
			t.Errorf("Fingerprint unchanged after a change of %s", name)
		}
	}
	same := map[string]func(*trunk.Trunk){
		"name":     func(t *trunk.Trunk) { t.Name = "Renamed" },
		"priority": func(t *trunk.Trunk) { t.URIs[0].Priority = 9 },
		"weight":   func(t *trunk.Trunk) { t.URIs[0].Weight = 9 },
	}
	for name, f := range same {
		c := base
		c.URIs = append([]trunk.URI(nil), base.URIs...)
		f(&c)
		if c.Fingerprint() != fp {
			t.Errorf("Fingerprint changed after a change of %s, which does not identify the binding", name)
		}
	}
}

func TestUser(t *testing.T) {
	tr := trunk.Trunk{Username: "alice"}
	if got := tr.User(trunk.URI{User: "1001"}); got != "1001" {
		t.Errorf("User with a uri user = %q", got)
	}
	if got := tr.User(trunk.URI{}); got != "alice" {
		t.Errorf("User without a uri user = %q", got)
	}
	if got := (trunk.Trunk{}).User(trunk.URI{}); got != "" {
		t.Errorf("User with neither = %q", got)
	}
}
