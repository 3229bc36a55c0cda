package siprequester

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/proto"

	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func parseResponse(t *testing.T, lines ...string) *sip.Response {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(strings.Join(lines, "\r\n") + "\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Response)
}

const (
	via   = "Via: SIP/2.0/UDP 127.0.0.1:40001;branch=z9hG4bK.b1;rport=40001;received=127.0.0.1"
	from  = "From: <sip:alice@test.local>;tag=ftag"
	to    = "To: <sip:alice@test.local>;tag=kam1"
	calli = "Call-ID: call-1"
)

func extensions(m *sipmessagepb.SIPMessage) map[string][]string {
	out := make(map[string][]string)
	for _, e := range m.GetExtensions() {
		out[e.GetName()] = append(out[e.GetName()], e.GetValue())
	}
	return out
}

func TestResponseMessageOK(t *testing.T) {
	m := responseMessage(parseResponse(t,
		"SIP/2.0 200 OK", via, from, to, calli, "CSeq: 2 REGISTER",
		"Contact: <sip:alice@127.0.0.1:40001;transport=udp>;expires=600",
		"Contact: <sip:alice@10.0.0.9:5060>;expires=100;q=0.5",
		"Expires: 700",
		"Server: kamailio (5.6.3 (x86_64/linux))",
		"Content-Length: 0",
	))
	if m.GetResponseType() != sipmessagepb.ResponseType_OK || m.GetReasonPhrase() != "OK" {
		t.Errorf("type %s reason %q", m.GetResponseType(), m.GetReasonPhrase())
	}
	wantContact := &sipmessagepb.Contact{
		Address: &sipmessagepb.Address{Uri: &sipmessagepb.SipURI{
			User: "alice", Host: "127.0.0.1", Port: 40001, TransportParam: "udp", TtlParam: -1,
		}},
		Expires: 600, QValue: -1,
	}
	if !proto.Equal(m.GetContact(), wantContact) {
		t.Errorf("contact %v, want the first one %v", m.GetContact(), wantContact)
	}
	if m.GetExpires().GetExpires() != 700 || m.GetCallId().GetCallId() != "call-1" ||
		m.GetFrom().GetTag() != "ftag" || m.GetTo().GetTag() != "kam1" ||
		m.GetTo().GetAddress().GetUri().GetUser() != "alice" || m.GetTo().GetAddress().GetUri().GetPort() != -1 {
		t.Errorf("fields: %v", m)
	}
	wantVia := &sipmessagepb.Via{Host: "127.0.0.1", Port: 40001, Branch: "z9hG4bK.b1", Transport: "UDP",
		RPortFlag: true, RPort: 40001, Received: "127.0.0.1", Ttl: -1}
	if len(m.GetVia()) != 1 || !proto.Equal(m.GetVia()[0], wantVia) {
		t.Errorf("via %v, want %v", m.GetVia(), wantVia)
	}
	ext := extensions(m)
	if ext["CSeq"][0] != "2 REGISTER" || ext["Server"][0] != "kamailio (5.6.3 (x86_64/linux))" || len(ext) != 2 {
		t.Errorf("extensions %v", ext)
	}
	if m.GetWwwAuthenticate() != nil {
		t.Errorf("www_authenticate %v", m.GetWwwAuthenticate())
	}
}

func TestResponseMessageChallenges(t *testing.T) {
	const challenge = `Digest realm="test.local", nonce="aGVsbG8=", qop="auth", algorithm=SHA-256, opaque="o\"p", stale=true, domain="sip:test.local"`
	m := responseMessage(parseResponse(t,
		"SIP/2.0 401 Unauthorized", via, from, to, calli, "CSeq: 1 REGISTER",
		"WWW-Authenticate: "+challenge, "Content-Length: 0",
	))
	want := &sipmessagepb.WWWAuthenticate{Scheme: "Digest", Realm: "test.local", Nonce: "aGVsbG8=", Qop: "auth",
		Algorithm: "SHA-256", Opaque: `o"p`, Stale: true, Domain: "sip:test.local"}
	if m.GetResponseType() != sipmessagepb.ResponseType_UNAUTHORIZED || !proto.Equal(m.GetWwwAuthenticate(), want) {
		t.Errorf("401: %s %v, want %v", m.GetResponseType(), m.GetWwwAuthenticate(), want)
	}
	if got := extensions(m)["WWW-Authenticate"]; len(got) != 1 || got[0] != challenge {
		t.Errorf("401: raw WWW-Authenticate extension %q", got)
	}

	m = responseMessage(parseResponse(t,
		"SIP/2.0 407 Proxy Authentication Required", via, from, to, calli, "CSeq: 1 REGISTER",
		`proxy-authenticate: Digest realm="test.local", nonce="n1", qop="auth"`, "Content-Length: 0",
	))
	if m.GetResponseType() != sipmessagepb.ResponseType_PROXY_AUTHENTICATION_REQUIRED || m.GetWwwAuthenticate() != nil {
		t.Errorf("407: %s %v", m.GetResponseType(), m.GetWwwAuthenticate())
	}
	if got := extensions(m)["Proxy-Authenticate"]; len(got) != 1 || got[0] != `Digest realm="test.local", nonce="n1", qop="auth"` {
		t.Errorf("407: Proxy-Authenticate extension %q (extensions %v)", got, extensions(m))
	}
}

func TestResponseMessageOthers(t *testing.T) {
	m := responseMessage(parseResponse(t,
		"SIP/2.0 423 Interval Too Brief", via, from, to, calli, "CSeq: 3 REGISTER",
		"Min-Expires: 60", "P-Registrar-Error: Interval too brief", "Content-Length: 0",
	))
	ext := extensions(m)
	if m.GetResponseType() != sipmessagepb.ResponseType_INTERVAL_TOO_BRIEF ||
		ext["Min-Expires"][0] != "60" || ext["P-Registrar-Error"][0] != "Interval too brief" {
		t.Errorf("423: %s %v", m.GetResponseType(), ext)
	}
	if m.GetContact() != nil {
		t.Errorf("423: contact %v", m.GetContact())
	}

	m = responseMessage(parseResponse(t,
		"SIP/2.0 503 Service Unavailable", via, from, to, calli, "CSeq: 3 REGISTER", "Retry-After: 120", "Content-Length: 0",
	))
	if m.GetResponseType() != sipmessagepb.ResponseType_SERVICE_UNAVAILABLE || extensions(m)["Retry-After"][0] != "120" {
		t.Errorf("503: %s %v", m.GetResponseType(), extensions(m))
	}

	// A code Routr's table does not know: REQUEST_TIMEOUT, as Routr's EdgePort drops it.
	m = responseMessage(parseResponse(t,
		"SIP/2.0 429 Too Many Requests", via, from, to, calli, "CSeq: 3 REGISTER", "Content-Length: 0",
	))
	if m.GetResponseType() != sipmessagepb.ResponseType_REQUEST_TIMEOUT || m.GetReasonPhrase() != "Request Timeout" {
		t.Errorf("429: %s %q", m.GetResponseType(), m.GetReasonPhrase())
	}
}

func TestTimeoutResponse(t *testing.T) {
	req, err := buildRequest(registerMessage(), udpSelf, "z9hG4bK.t1")
	if err != nil {
		t.Fatal(err)
	}
	m := timeoutResponse(req)
	if m.GetResponseType() != sipmessagepb.ResponseType_REQUEST_TIMEOUT || m.GetReasonPhrase() != "Request Timeout" ||
		m.GetCallId().GetCallId() != "call-1@registry" || m.GetFrom().GetTag() != "ftag" ||
		len(m.GetVia()) != 1 || m.GetVia()[0].GetBranch() != "z9hG4bK.t1" || extensions(m)["CSeq"][0] != "7 REGISTER" {
		t.Errorf("timeout answer: %v", m)
	}
}

func TestParseAuthParams(t *testing.T) {
	scheme, params, err := parseAuthParams(`Digest  realm="a, b",nonce=xyz , qop="auth,auth-int", opaque=""`)
	if err != nil || scheme != "Digest" || params["realm"] != "a, b" || params["nonce"] != "xyz" ||
		params["qop"] != "auth,auth-int" || params["opaque"] != "" || len(params) != 4 {
		t.Errorf("got %q %v %v", scheme, params, err)
	}
	for _, bad := range []string{"Digest", `Digest realm="open`, "Digest realm"} {
		if _, _, err := parseAuthParams(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
