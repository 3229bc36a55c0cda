package sipmsg_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/<file>, or rewrites the file with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update and review the diff)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// stableJSON renders m as indented JSON. protojson deliberately varies its whitespace
// from run to run, so its output is compacted and indented again.
func stableJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	raw, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// answer computes a deterministic digest answer for reg (fixed cnonce).
func answer(t *testing.T, reg sipmsg.Register, proxy bool) *sipauth.Authorization {
	t.Helper()
	ch := sipauth.Challenge{Proxy: proxy, Realm: "sip.provider.net", Nonce: "5f8a7c1e0b", Opaque: "op4que", Qop: "auth"}
	if proxy {
		ch.Algorithm = "SHA-256"
	}
	a, err := sipauth.Answer(ch, sipauth.Credentials{Username: "alice", Password: "s3cret"}, "REGISTER", reg.RequestURI(), 1, "0a4f113b")
	if err != nil {
		t.Fatal(err)
	}
	return &a
}

type buildCase struct {
	name string
	reg  sipmsg.Register
}

func buildCases(t *testing.T) []buildCase {
	t.Helper()
	gw, err := sipauth.GatewayAuth(sipauth.Credentials{Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	// Through Routr: UDP, an EdgePort, Allow per method, gin and X-Gateway-Auth, as Routr's
	// own registry sends them.
	udp := sipmsg.Register{
		Domain: "sip.provider.net", Transport: "udp", User: "alice",
		CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 1, Expires: 600,
		EdgePortHost: "sip01.edgeport.net", EdgePortPort: 5060,
		Methods: []string{"INVITE", "MESSAGE"}, UserAgent: "Routr Registry (sipreg)", Gin: true,
		GatewayAuth: gw,
	}
	tcp := udp
	tcp.Transport, tcp.Port, tcp.CSeq = "tcp", 5080, 7
	tcp.EdgePortHost, tcp.EdgePortPort, tcp.Gin = "sip02.edgeport.net", 6060, false

	edgeNoPort := udp
	edgeNoPort.EdgePortPort = 0

	// Direct to a registrar: no EdgePort, no X-Gateway-Auth, nothing optional.
	direct := sipmsg.Register{
		Domain: "registrar.example.org", Port: 5060, Transport: "udp", User: "1001",
		CallID: "direct-call-id", FromTag: "tag-direct", CSeq: 1, Expires: 3600,
	}
	auth401 := direct
	auth401.CSeq = 2
	auth401.Auth = answer(t, auth401, false)
	auth407 := direct
	auth407.Transport, auth407.CSeq = "tcp", 2
	auth407.Auth = answer(t, auth407, true)

	unregister := udp
	unregister.Expires, unregister.CSeq = 0, 42

	return []buildCase{
		{"udp-edgeport", udp},
		{"tcp-port", tcp},
		{"edgeport-no-port", edgeNoPort},
		{"no-edgeport", direct},
		{"auth-401", auth401},
		{"auth-407", auth407},
		{"unregister", unregister},
	}
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range buildCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, "build-"+tc.name+".golden", stableJSON(t, sipmsg.Build(tc.reg)))
		})
	}
}

// The protocol rules, asserted one by one for every case (RFC 3261 §10.2 and docs/wire.md).
func TestBuildRules(t *testing.T) {
	for _, tc := range buildCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.reg
			req := sipmsg.Build(r)
			msg := req.GetMessage()
			port := r.Port
			if port == 0 {
				port = 5060
			}

			if want := r.Domain + ":" + strconv.Itoa(port); req.GetTarget() != want {
				t.Errorf("target = %q, want %q", req.GetTarget(), want)
			}
			if req.GetMethod() != processorv2beta1.Method_REGISTER {
				t.Errorf("method = %v", req.GetMethod())
			}
			wantTransport := map[string]commonv2beta1.Transport{"udp": commonv2beta1.Transport_UDP, "tcp": commonv2beta1.Transport_TCP}[r.Transport]
			if req.GetTransport() != wantTransport {
				t.Errorf("transport = %v, want %v", req.GetTransport(), wantTransport)
			}

			// Request-URI: the registrar's domain, no user part.
			ru := msg.GetRequestUri()
			if ru == nil {
				t.Fatal("no request_uri")
			}
			if ru.GetUser() != "" || ru.GetUserPassword() != "" {
				t.Errorf("request_uri has a user part: %v", ru)
			}
			if ru.GetHost() != r.Domain || ru.GetPort() != int32(port) || ru.GetTransportParam() != r.Transport {
				t.Errorf("request_uri = %v, want host %s port %d transport %s", ru, r.Domain, port, r.Transport)
			}

			// From and To: the address-of-record; From has the binding's tag, To none.
			for _, hdr := range []struct {
				name string
				addr *pb.Address
			}{{"From", msg.GetFrom().GetAddress()}, {"To", msg.GetTo().GetAddress()}} {
				u := hdr.addr.GetUri()
				if u.GetUser() != r.User || u.GetHost() != r.Domain || u.GetPort() != -1 {
					t.Errorf("%s uri = %v, want sip:%s@%s with port -1", hdr.name, u, r.User, r.Domain)
				}
				if u.GetTransportParam() != "" || u.GetLrParam() {
					t.Errorf("%s uri has URI parameters: %v", hdr.name, u)
				}
			}
			if msg.GetFrom().GetTag() != r.FromTag || r.FromTag == "" {
				t.Errorf("From tag = %q, want %q", msg.GetFrom().GetTag(), r.FromTag)
			}
			if msg.GetTo().GetTag() != "" {
				t.Errorf("To has a tag: %q", msg.GetTo().GetTag())
			}
			if r.AOR() != "sip:"+r.User+"@"+r.Domain {
				t.Errorf("AOR() = %q", r.AOR())
			}

			// What the Requester adds or Routr would spoil must not be sent.
			if msg.GetContact() != nil {
				t.Errorf("a Contact is sent: %v", msg.GetContact())
			}
			if len(msg.GetVia()) != 0 || len(msg.GetRecordRoute()) != 0 || msg.GetWwwAuthenticate() != nil {
				t.Errorf("unexpected Via, Record-Route or WWW-Authenticate: %v", msg)
			}
			if msg.GetCallId().GetCallId() != r.CallID {
				t.Errorf("Call-ID = %q, want %q", msg.GetCallId().GetCallId(), r.CallID)
			}
			if msg.GetMaxForwards().GetMaxForwards() != 70 {
				t.Errorf("Max-Forwards = %d, want 70", msg.GetMaxForwards().GetMaxForwards())
			}
			if msg.GetExpires() == nil || msg.GetExpires().GetExpires() != int32(r.Expires) {
				t.Errorf("Expires = %v, want %d", msg.GetExpires(), r.Expires)
			}

			// Headers without a field of their own.
			if got := values(msg, "CSeq"); !slices.Equal(got, []string{strconv.FormatUint(uint64(r.CSeq), 10) + " REGISTER"}) {
				t.Errorf("CSeq = %q, want one %d REGISTER", got, r.CSeq)
			}
			if got := values(msg, "Allow"); !slices.Equal(got, r.Methods) {
				t.Errorf("Allow = %q, want one per method %q", got, r.Methods)
			}
			if got := values(msg, "Supported"); !slices.Equal(got, []string{"path"}) {
				t.Errorf("Supported = %q, want [path]", got)
			}
			wantGin := []string(nil)
			if r.Gin {
				wantGin = []string{"gin"}
			}
			if got := values(msg, "Require"); !slices.Equal(got, wantGin) {
				t.Errorf("Require = %q, want %q", got, wantGin)
			}
			if got := values(msg, "Proxy-Require"); !slices.Equal(got, wantGin) {
				t.Errorf("Proxy-Require = %q, want %q", got, wantGin)
			}
			if got := values(msg, "X-Gateway-Auth"); !slices.Equal(got, nonEmpty(r.GatewayAuth)) {
				t.Errorf("X-Gateway-Auth = %q, want %q", got, nonEmpty(r.GatewayAuth))
			}
			if got := values(msg, "User-Agent"); !slices.Equal(got, nonEmpty(r.UserAgent)) {
				t.Errorf("User-Agent = %q, want %q", got, nonEmpty(r.UserAgent))
			}

			// Route to the EdgePort, loose routing, same transport.
			if r.EdgePortHost == "" {
				if len(msg.GetRoute()) != 0 {
					t.Errorf("Route without an EdgePort: %v", msg.GetRoute())
				}
			} else {
				if len(msg.GetRoute()) != 1 {
					t.Fatalf("Route = %v, want one", msg.GetRoute())
				}
				u := msg.GetRoute()[0].GetAddress().GetUri()
				wantPort := int32(r.EdgePortPort)
				if wantPort == 0 {
					wantPort = -1
				}
				if u.GetHost() != r.EdgePortHost || u.GetPort() != wantPort || !u.GetLrParam() ||
					u.GetTransportParam() != r.Transport || u.GetUser() != "" {
					t.Errorf("Route uri = %v, want %s port %d ;lr ;transport=%s", u, r.EdgePortHost, wantPort, r.Transport)
				}
			}

			// Digest answers: 401 as the authorization field, 407 as a Proxy-Authorization
			// extension.
			proxyAuth := values(msg, "Proxy-Authorization")
			switch {
			case r.Auth == nil:
				if msg.GetAuthorization() != nil || len(proxyAuth) != 0 || len(values(msg, "Authorization")) != 0 {
					t.Errorf("credentials sent without an answer: %v", msg)
				}
			case r.Auth.Proxy:
				if msg.GetAuthorization() != nil {
					t.Errorf("answer to a 407 in the authorization field: %v", msg.GetAuthorization())
				}
				if len(proxyAuth) != 1 || !strings.HasPrefix(proxyAuth[0], "Digest ") ||
					!strings.Contains(proxyAuth[0], `uri="`+r.RequestURI()+`"`) {
					t.Errorf("Proxy-Authorization = %q", proxyAuth)
				}
			default:
				a := msg.GetAuthorization()
				if a.GetUsername() != "alice" || a.GetUri() != r.RequestURI() || a.GetMethod() != "REGISTER" ||
					a.GetScheme() != "Digest" || a.GetResponse() == "" || a.GetNonceCount() != 1 {
					t.Errorf("authorization = %v", a)
				}
				if len(proxyAuth) != 0 {
					t.Errorf("answer to a 401 as Proxy-Authorization: %q", proxyAuth)
				}
			}

			// Routr writes a port of 0 as ":0": no SipURI may carry one.
			for _, u := range []*pb.SipURI{ru, msg.GetFrom().GetAddress().GetUri(), msg.GetTo().GetAddress().GetUri()} {
				if u.GetPort() == 0 {
					t.Errorf("port 0 in %v", u)
				}
			}
			for _, rt := range msg.GetRoute() {
				if rt.GetAddress().GetUri().GetPort() == 0 {
					t.Errorf("port 0 in Route %v", rt)
				}
			}
		})
	}
}

// values returns the values of the extensions named name (exact spelling, as sent).
func values(msg *pb.SIPMessage, name string) []string {
	var out []string
	for _, e := range msg.GetExtensions() {
		if e.GetName() == name {
			out = append(out, e.GetValue())
		}
	}
	return out
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Build shares nothing with its input or with earlier results.
func TestBuildIndependent(t *testing.T) {
	r := buildCases(t)[0].reg
	methods := slices.Clone(r.Methods)
	a, b := sipmsg.Build(r), sipmsg.Build(r)
	if !proto.Equal(a, b) {
		t.Fatal("Build is not deterministic")
	}
	a.GetMessage().GetExtensions()[0].Value = "changed"
	a.GetMessage().GetFrom().GetAddress().GetUri().Host = "changed"
	if proto.Equal(a, b) {
		t.Error("two Builds share extensions or addresses")
	}
	if b.GetMessage().GetTo().GetAddress().GetUri().GetHost() != r.Domain {
		t.Error("From and To share a SipURI")
	}
	if !slices.Equal(r.Methods, methods) {
		t.Errorf("Build changed r.Methods: %q", r.Methods)
	}
}

func TestRegisterAddresses(t *testing.T) {
	tests := []struct {
		reg                   sipmsg.Register
		target, requestURI, a string
	}{
		{sipmsg.Register{Domain: "sip.example.com", Transport: "udp", User: "alice"},
			"sip.example.com:5060", "sip:sip.example.com:5060;transport=udp", "sip:alice@sip.example.com"},
		{sipmsg.Register{Domain: "sip.example.com", Port: 5080, Transport: "tcp", User: "1001"},
			"sip.example.com:5080", "sip:sip.example.com:5080;transport=tcp", "sip:1001@sip.example.com"},
		{sipmsg.Register{Domain: "10.0.0.1", Port: 5060, Transport: "udp"},
			"10.0.0.1:5060", "sip:10.0.0.1:5060;transport=udp", "sip:10.0.0.1"},
	}
	for _, tt := range tests {
		if got := tt.reg.Target(); got != tt.target {
			t.Errorf("%+v: Target() = %q, want %q", tt.reg, got, tt.target)
		}
		if got := tt.reg.RequestURI(); got != tt.requestURI {
			t.Errorf("%+v: RequestURI() = %q, want %q", tt.reg, got, tt.requestURI)
		}
		if got := tt.reg.AOR(); got != tt.a {
			t.Errorf("%+v: AOR() = %q, want %q", tt.reg, got, tt.a)
		}
	}
}

func TestTransportProto(t *testing.T) {
	tests := []struct {
		in   string
		want commonv2beta1.Transport
		ok   bool
	}{
		{"udp", commonv2beta1.Transport_UDP, true},
		{"tcp", commonv2beta1.Transport_TCP, true},
		{"tls", commonv2beta1.Transport_UDP, false},
		{"ws", commonv2beta1.Transport_UDP, false},
		{"wss", commonv2beta1.Transport_UDP, false},
		{"sctp", commonv2beta1.Transport_UDP, false},
		{"", commonv2beta1.Transport_UDP, false},
	}
	for _, tt := range tests {
		got, ok := sipmsg.TransportProto(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("TransportProto(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// The request is what the Requester's client sends: it must survive the wire.
func TestBuildRoundTrip(t *testing.T) {
	for _, tc := range buildCases(t) {
		req := sipmsg.Build(tc.reg)
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var back requesterv2beta1.SendMessageRequest
		if err := proto.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !proto.Equal(req, &back) {
			t.Errorf("%s: changed on the wire", tc.name)
		}
	}
}
