package sipmsg

import (
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/sipauth"
)

// refBuild is build as it was before it allocated its messages in one block: the
// reference the new one must agree with, field for field.
func refBuild(r Register) *requesterv2beta1.SendMessageRequest {
	transport, _ := TransportProto(r.Transport)
	user, domain := escapeUser(r.User), uriHost(r.Domain)
	aor := func() *sipmessagev2beta1.Address {
		return &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: user, Host: domain, Port: -1}}
	}
	port := int32(r.Port)
	if port == 0 {
		port = 5060
	}
	msg := &sipmessagev2beta1.SIPMessage{
		MessageType: &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{
			Host: domain, Port: port, TransportParam: r.Transport,
		}},
		From:        &sipmessagev2beta1.From{Address: aor(), Tag: r.FromTag},
		To:          &sipmessagev2beta1.To{Address: aor()},
		CallId:      &sipmessagev2beta1.CallID{CallId: r.CallID},
		Expires:     &sipmessagev2beta1.Expires{Expires: int32(r.Expires)},
		MaxForwards: &sipmessagev2beta1.MaxForwards{MaxForwards: MaxForwards},
	}
	if r.EdgePortHost != "" {
		ep := int32(r.EdgePortPort)
		if ep == 0 {
			ep = -1
		}
		msg.Route = []*sipmessagev2beta1.Route{{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{
			Host: uriHost(r.EdgePortHost), Port: ep, TransportParam: r.Transport, LrParam: true,
		}}}}
	}
	ext := func(name, value string) {
		msg.Extensions = append(msg.Extensions, &sipmessagev2beta1.Extension{Name: name, Value: value})
	}
	ext("CSeq", strconv.FormatUint(uint64(r.CSeq), 10)+" REGISTER")
	if r.UserAgent != "" {
		ext("User-Agent", r.UserAgent)
	}
	for _, m := range r.Methods {
		ext("Allow", m)
	}
	ext("Supported", "path")
	if r.Gin {
		ext("Require", "gin")
		ext("Proxy-Require", "gin")
	}
	if r.GatewayAuth != "" {
		ext(GatewayAuthHeader, r.GatewayAuth)
	}
	if r.Auth != nil {
		r.Auth.Apply(msg, "REGISTER")
	}
	return &requesterv2beta1.SendMessageRequest{
		Target:    r.Target(),
		Method:    processorv2beta1.Method_REGISTER,
		Transport: transport,
		Message:   msg,
	}
}

// sameWire fails unless got and want are equal messages with the same wire bytes.
func sameWire(t *testing.T, what string, got, want *requesterv2beta1.SendMessageRequest) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s: build differs from the reference:\n got %v\nwant %v", what, got, want)
	}
	opt := proto.MarshalOptions{Deterministic: true}
	gb, err1 := opt.Marshal(got)
	wb, err2 := opt.Marshal(want)
	if err1 != nil || err2 != nil {
		// Invalid UTF-8 before scrubbing: proto.Equal above is the comparison then.
		if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
			t.Fatalf("%s: marshal: %v, reference %v", what, err1, err2)
		}
		return
	}
	if string(gb) != string(wb) {
		t.Fatalf("%s: wire bytes differ", what)
	}
}

// FuzzBuildReference holds build (one block) to refBuild (a message per allocation):
// the same request, before and after scrubbing, and the same Check verdict, whatever
// the Register holds (IPv6 and bad hosts, control characters, many methods, a digest
// answer).
func FuzzBuildReference(f *testing.F) {
	f.Add("sip.provider.net", 0, "udp", "alice", "3c26f9e1b2d4@sipreg", "a73kszlfl", uint32(1), 600,
		"sip01.edgeport.net", 5060, "INVITE,MESSAGE", "Routr Registry", true, "YWxpY2U6czNjcmV0", 0)
	f.Add("[2001:db8::1]", 5080, "tcp", "/bob@x", "id", "t", uint32(4294967295), 0,
		"::1", 0, "", "", false, "", 1)
	f.Add("2001:db8::1", -3, "tls", "a\r\nb", "", "", uint32(0), -1,
		"", 70000, "A,B,C,D,E,F,G,H,I,J,K,L,M,N", "ua\x00", true, "x\ty", 2)
	f.Add("bad host:1", 65535, "", "\xff", "a@b@c", "t t", uint32(9), 1<<40,
		"[fe80::1%eth0]", 1, ",,", "\t", false, "\u0085", 0)
	f.Fuzz(func(t *testing.T, domain string, port int, transport, user, callID, tag string, cseq uint32,
		expires int, epHost string, epPort int, methods, ua string, gin bool, gw string, auth int) {
		r := Register{
			Domain: domain, Port: port, Transport: transport, User: user, CallID: callID, FromTag: tag,
			CSeq: cseq, Expires: expires, EdgePortHost: epHost, EdgePortPort: epPort,
			UserAgent: ua, Gin: gin, GatewayAuth: gw,
		}
		if methods != "" {
			for m := range splitComma(methods) {
				r.Methods = append(r.Methods, m)
			}
		}
		if auth%3 != 0 {
			r.Auth = &sipauth.Authorization{Proxy: auth%3 == 2, Username: user, Realm: domain,
				Nonce: "n", URI: "sip:" + domain, Response: "r", Algorithm: "MD5", Qop: "auth", Cnonce: "c", NC: 1}
		}
		got, want := build(r), refBuild(r)
		sameWire(t, "build", got, want)
		if got.GetTarget() != r.Target() {
			t.Fatalf("Target %q, want %q", got.GetTarget(), r.Target())
		}
		e1, e2 := Check(got), Check(want)
		if (e1 == nil) != (e2 == nil) || e1 != nil && e1.Error() != e2.Error() {
			t.Fatalf("Check: %v, reference %v", e1, e2)
		}
		if r.Auth == nil {
			if fast := buildBlock(r).check(); (fast == nil) != (e2 == nil) {
				t.Fatalf("block check: %v, Check: %v", fast, e2)
			}
		}
		_, e3 := BuildChecked(r)
		e4 := r.Validate()
		if e4 == nil {
			e4 = e2
		}
		if (e3 == nil) != (e4 == nil) || e3 != nil && e3.Error() != e4.Error() {
			t.Fatalf("BuildChecked: %v, reference %v", e3, e4)
		}
		scrub(got)
		scrub(want)
		sameWire(t, "scrubbed", got, want)
		if _, err := proto.Marshal(got); err != nil {
			t.Fatalf("scrubbed request does not marshal: %v", err)
		}
	})
}

// splitComma yields the parts of s between commas.
func splitComma(s string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			i := 0
			for i < len(s) && s[i] != ',' {
				i++
			}
			if !yield(s[:i]) || i == len(s) {
				return
			}
			s = s[i+1:]
		}
	}
}

// TestBuildReference runs the golden cases through both builders.
func TestBuildReference(t *testing.T) {
	for i, r := range []Register{
		{Domain: "sip.provider.net", Transport: "udp", User: "alice", CallID: "c@h", FromTag: "t", CSeq: 1,
			Expires: 600, EdgePortHost: "ep", EdgePortPort: 5060, Methods: []string{"INVITE", "MESSAGE"},
			UserAgent: "ua", Gin: true, GatewayAuth: "gw"},
		{Domain: "::1", Port: 5080, Transport: "tcp", User: "u", CallID: "c", FromTag: "t", CSeq: 7},
		{Domain: "[::1]", Methods: make([]string, 2*blockExts)},
	} {
		sameWire(t, "case "+strconv.Itoa(i), build(r), refBuild(r))
	}
}

// TestBlockCheckVerdict: for a valid Register and each one-field spoiling of it, the
// block's check and Check agree on whether the request may go out.
func TestBlockCheckVerdict(t *testing.T) {
	base := Register{Domain: "sip.provider.net", Transport: "udp", User: "alice", CallID: "c@h", FromTag: "t",
		CSeq: 1, Expires: 600, EdgePortHost: "ep.example", EdgePortPort: 5060, Methods: []string{"INVITE"},
		UserAgent: "ua", Gin: true, GatewayAuth: "gw"}
	spoil := []func(*Register){
		func(*Register) {},
		func(r *Register) { r.Domain = "" },
		func(r *Register) { r.Domain = "bad host" },
		func(r *Register) { r.Domain = "::1" },
		func(r *Register) { r.Domain = "1.2.3.4" },
		func(r *Register) { r.Port = 70000 },
		func(r *Register) { r.Port = -5 },
		func(r *Register) { r.Transport = "t t" },
		func(r *Register) { r.Transport = "" },
		func(r *Register) { r.User = "" },
		func(r *Register) { r.User = "a\r\nb" },
		func(r *Register) { r.CallID = "" },
		func(r *Register) { r.CallID = "a b" },
		func(r *Register) { r.FromTag = "a;b" },
		func(r *Register) { r.EdgePortHost = "bad host" },
		func(r *Register) { r.EdgePortPort = 70000 },
		func(r *Register) { r.EdgePortPort = 0 },
		func(r *Register) { r.Methods = []string{"IN VITE"} },
		func(r *Register) { r.Methods = []string{""} },
		func(r *Register) { r.UserAgent = "a\rb" },
		func(r *Register) { r.UserAgent = "a\tb" },
		func(r *Register) { r.UserAgent = "\xff" },
		func(r *Register) { r.GatewayAuth = "a\x00" },
	}
	for i, f := range spoil {
		r := base
		f(&r)
		fast, full := buildBlock(r).check(), Check(build(r))
		if (fast == nil) != (full == nil) {
			t.Errorf("case %d: block check %v, Check %v", i, fast, full)
		}
	}
}
