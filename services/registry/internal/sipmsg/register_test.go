package sipmsg_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
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
