package siprequester

import (
	"slices"
	"strings"
	"testing"

	processorpb "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterpb "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

var (
	udpSelf = endpoint{transport: "udp", host: "127.0.0.1", port: 40001}
	tcpSelf = endpoint{transport: "tcp", host: "127.0.0.1", port: 40002}
)

func ext(name, value string) *sipmessagepb.Extension {
	return &sipmessagepb.Extension{Name: name, Value: value}
}

func uri(user, host string, port int32) *sipmessagepb.SipURI {
	return &sipmessagepb.SipURI{User: user, Host: host, Port: port}
}

// registerMessage is a REGISTER as the registry builds it.
func registerMessage() *requesterpb.SendMessageRequest {
	return &requesterpb.SendMessageRequest{
		Target:    "sip.example.net:5070",
		Method:    processorpb.Method_REGISTER,
		Transport: 0,
		Message: &sipmessagepb.SIPMessage{
			MessageType: &sipmessagepb.SIPMessage_RequestUri{RequestUri: uri("", "sip.example.net", -1)},
			From: &sipmessagepb.From{
				Address: &sipmessagepb.Address{Uri: uri("trunk1", "sip.example.net", -1), DisplayName: "Trunk One"},
				Tag:     "ftag",
			},
			To:          &sipmessagepb.To{Address: &sipmessagepb.Address{Uri: uri("trunk1", "sip.example.net", -1)}},
			CallId:      &sipmessagepb.CallID{CallId: "call-1@registry"},
			MaxForwards: &sipmessagepb.MaxForwards{MaxForwards: 70},
			Expires:     &sipmessagepb.Expires{Expires: 600},
			// Never sent: the requester writes its own Contact.
			Contact: &sipmessagepb.Contact{Address: &sipmessagepb.Address{Uri: uri("evil", "10.0.0.1", 5060)}},
			Extensions: []*sipmessagepb.Extension{
				ext("CSeq", "7 REGISTER"),
				ext("User-Agent", "sipreg/1"),
				ext("Allow", "INVITE"),
				ext("Allow", "BYE"),
				ext("Supported", "path"),
				ext("X-Gateway-Auth", "dXNlcjpwdw=="),
				ext("user-agent", "second/2"),         // single: the first one wins
				ext("CSeq", "99 REGISTER"),            // single: the first one wins
				ext("Expires", "30"),                  // the field wins
				ext("Contact", "<sip:evil@10.0.0.1>"), // never sent
				ext("m", "<sip:evil@10.0.0.2>"),       // compact Contact, never sent
				ext("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx"),
				ext("Content-Length", "99"),
				ext("Proxy-Authorization", `Digest username="trunk1", realm="r", nonce="n", uri="sip:x", response="abc"`),
			},
		},
	}
}

func headerLines(hdrs []header) []string {
	var out []string
	for _, h := range hdrs {
		out = append(out, h.name+": "+h.value)
	}
	return out
}

func TestRequestHeaders(t *testing.T) {
	method, gotURI, hdrs, err := requestHeaders(registerMessage(), udpSelf, "z9hG4bK.b1")
	if err != nil {
		t.Fatal(err)
	}
	if method != "REGISTER" || gotURI != "sip:sip.example.net:5070;transport=udp" {
		t.Errorf("request line: %s %s", method, gotURI)
	}
	want := []string{
		"Via: SIP/2.0/UDP 127.0.0.1:40001;branch=z9hG4bK.b1;rport",
		"Max-Forwards: 70",
		`From: "Trunk One" <sip:trunk1@sip.example.net>;tag=ftag`,
		"To: <sip:trunk1@sip.example.net>",
		"Call-ID: call-1@registry",
		"Contact: <sip:trunk1@127.0.0.1:40001;transport=udp>",
		"Expires: 600",
		"CSeq: 7 REGISTER",
		"User-Agent: sipreg/1",
		"Allow: INVITE",
		"Allow: BYE",
		"Supported: path",
		"X-Gateway-Auth: dXNlcjpwdw==",
		`Proxy-Authorization: Digest username="trunk1", realm="r", nonce="n", uri="sip:x", response="abc"`,
		"Content-Length: 0",
	}
	if got := headerLines(hdrs); !slices.Equal(got, want) {
		t.Errorf("headers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRequestHeadersFields(t *testing.T) {
	in := registerMessage()
	m := in.Message
	m.MessageType = &sipmessagepb.SIPMessage_RequestUri{RequestUri: uri("trunk1", "ignored", 1)}
	// Zero values go on the wire, as in Routr: a port of 0 is written.
	m.From.Address.Uri.Port = 0
	m.From.Parameters = map[string]string{"b": "2", "a": ""}
	m.To.Tag = "ttag"
	m.Via = []*sipmessagepb.Via{{Host: "10.1.1.1", Port: 5060, Branch: "z9hG4bKold", Transport: "udp", RPortFlag: true, Received: "10.2.2.2"}}
	m.Route = []*sipmessagepb.Route{{Address: &sipmessagepb.Address{Uri: &sipmessagepb.SipURI{
		Host: "edge.example.net", Port: 5080, LrParam: true, TransportParam: "tcp",
	}}}}
	m.Expires = &sipmessagepb.Expires{Expires: 0}
	m.Authorization = &sipmessagepb.Authorization{
		Username: "trunk1", Realm: "test.local", Nonce: "abc", Uri: "sip:sip.example.net:5070;transport=tcp",
		Response: "0123", Algorithm: "MD5", Qop: "auth", NonceCount: 26, CNonce: "cn", Opaque: "op",
	}
	m.Extensions = append(m.Extensions,
		ext("Authorization", "Digest bogus"), // the field wins
		ext("Route", "<sip:second.example.net;lr>"),
	)

	method, gotURI, hdrs, err := requestHeaders(in, tcpSelf, "z9hG4bK.b2")
	if err != nil {
		t.Fatal(err)
	}
	if method != "REGISTER" || gotURI != "sip:trunk1@sip.example.net:5070;transport=tcp" {
		t.Errorf("request line: %s %s", method, gotURI)
	}
	got := headerLines(hdrs)
	for _, want := range []string{
		"Via: SIP/2.0/TCP 127.0.0.1:40002;branch=z9hG4bK.b2;rport",
		"Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKold;rport;received=10.2.2.2",
		"Route: <sip:edge.example.net:5080;transport=tcp;lr>",
		`From: "Trunk One" <sip:trunk1@sip.example.net:0>;tag=ftag;a;b=2`,
		"To: <sip:trunk1@sip.example.net>;tag=ttag",
		"Contact: <sip:trunk1@127.0.0.1:40002;transport=tcp>",
		"Expires: 0",
		`Authorization: Digest username="trunk1", realm="test.local", nonce="abc", uri="sip:sip.example.net:5070;transport=tcp", response="0123", algorithm=MD5, qop=auth, nc=0000001a, cnonce="cn", opaque="op"`,
		"Route: <sip:second.example.net;lr>",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if got[0] != "Via: SIP/2.0/TCP 127.0.0.1:40002;branch=z9hG4bK.b2;rport" {
		t.Errorf("own Via is not on top: %q", got[0])
	}
	for _, h := range got {
		if strings.HasPrefix(h, "Contact:") && !strings.Contains(h, "127.0.0.1:40002") {
			t.Errorf("a Contact from the message was sent: %q", h)
		}
		if h == "Authorization: Digest bogus" {
			t.Error("the authorization extension was sent next to the field")
		}
	}
}

func TestBuildRequest(t *testing.T) {
	req, err := buildRequest(registerMessage(), udpSelf, "z9hG4bK.b3")
	if err != nil {
		t.Fatal(err)
	}
	if req.Destination() != "sip.example.net:5070" || req.Transport() != "UDP" {
		t.Errorf("destination %s transport %s; want sip.example.net:5070 UDP", req.Destination(), req.Transport())
	}
	if req.CSeq().SeqNo != 7 || req.Via().Params.GetOr("branch", "") != "z9hG4bK.b3" {
		t.Errorf("CSeq %v, Via %v", req.CSeq(), req.Via())
	}
	wire := req.String()
	if !strings.HasPrefix(wire, "REGISTER sip:sip.example.net:5070;transport=udp SIP/2.0\r\n") ||
		!strings.Contains(wire, "\r\nFrom: \"Trunk One\" <sip:trunk1@sip.example.net>;tag=ftag\r\n") ||
		!strings.HasSuffix(wire, "\r\nContent-Length: 0\r\n\r\n") {
		t.Errorf("wire text:\n%s", wire)
	}

	// Loose routing: sent to the first Route's host:port, Request-URI unchanged.
	in := registerMessage()
	in.Message.Route = []*sipmessagepb.Route{{Address: &sipmessagepb.Address{Uri: &sipmessagepb.SipURI{Host: "127.0.0.1", Port: 5999, LrParam: true}}}}
	req, err = buildRequest(in, udpSelf, "z9hG4bK.b4")
	if err != nil {
		t.Fatal(err)
	}
	if req.Destination() != "127.0.0.1:5999" || req.Recipient.Host != "sip.example.net" {
		t.Errorf("destination %s, recipient %s", req.Destination(), req.Recipient.String())
	}

	// A target without a port goes to 5060; a body is sent with its length.
	in = registerMessage()
	in.Target = "sip.example.net"
	in.Message.Body = "héllo"
	in.Message.Extensions = append(in.Message.Extensions, ext("Content-Type", "text/plain"))
	req, err = buildRequest(in, tcpSelf, "z9hG4bK.b5")
	if err != nil {
		t.Fatal(err)
	}
	if req.Destination() != "sip.example.net:5060" || string(req.Body()) != "héllo" || req.ContentLength().Value() != "6" {
		t.Errorf("destination %s body %q length %v", req.Destination(), req.Body(), req.ContentLength())
	}
}

func TestBuildRequestErrors(t *testing.T) {
	for name, mutate := range map[string]func(*requesterpb.SendMessageRequest){
		"no message":      func(in *requesterpb.SendMessageRequest) { in.Message = nil },
		"unknown method":  func(in *requesterpb.SendMessageRequest) { in.Method = processorpb.Method_UNKNOWN },
		"no target":       func(in *requesterpb.SendMessageRequest) { in.Target = "" },
		"no Call-ID":      func(in *requesterpb.SendMessageRequest) { in.Message.CallId = nil },
		"empty Call-ID":   func(in *requesterpb.SendMessageRequest) { in.Message.CallId.CallId = "" },
		"no From":         func(in *requesterpb.SendMessageRequest) { in.Message.From = nil },
		"no From host":    func(in *requesterpb.SendMessageRequest) { in.Message.From.Address.Uri.Host = "" },
		"no To":           func(in *requesterpb.SendMessageRequest) { in.Message.To = nil },
		"no Max-Forwards": func(in *requesterpb.SendMessageRequest) { in.Message.MaxForwards = nil },
		"no CSeq": func(in *requesterpb.SendMessageRequest) {
			in.Message.Extensions = slices.DeleteFunc(in.Message.Extensions, func(e *sipmessagepb.Extension) bool { return e.Name == "CSeq" })
		},
		"bad CSeq":         func(in *requesterpb.SendMessageRequest) { in.Message.Extensions[0].Value = "seven REGISTER" },
		"CSeq method":      func(in *requesterpb.SendMessageRequest) { in.Message.Extensions[0].Value = "7 INVITE" },
		"bad name":         func(in *requesterpb.SendMessageRequest) { in.Message.Extensions[1].Name = "User Agent" },
		"line break":       func(in *requesterpb.SendMessageRequest) { in.Message.Extensions[1].Value = "x\r\nVia: evil" },
		"line break field": func(in *requesterpb.SendMessageRequest) { in.Message.CallId.CallId = "a\nb" },
	} {
		in := registerMessage()
		mutate(in)
		if _, err := buildRequest(in, udpSelf, "z9hG4bK.e"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	// Without the field, an extension of the same name is used.
	in := registerMessage()
	in.Message.MaxForwards = nil
	in.Message.Extensions = append(in.Message.Extensions, ext("Max-Forwards", "69"))
	req, err := buildRequest(in, udpSelf, "z9hG4bK.e")
	if err != nil || req.MaxForwards() == nil || req.MaxForwards().Val() != 69 {
		t.Errorf("Max-Forwards from an extension: %v, %v", req, err)
	}
}
