package siprequester_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"

	commonpb "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	sipmessagepb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/tools/kamailio"
	"sipreg.dev/tools/siprequester"
)

// registerWithAuth sends a REGISTER, expects a 401 and answers it with the authorization
// field (CSeq + 1); it returns the final answer.
func registerWithAuth(t *testing.T, r *requester, b *binding, password string, expires int32) *sipmessagepb.SIPMessage {
	t.Helper()
	res := r.send(t, b.register(expires))
	if res.GetResponseType() != sipmessagepb.ResponseType_UNAUTHORIZED {
		t.Fatalf("first REGISTER: %s %q, want UNAUTHORIZED", res.GetResponseType(), res.GetReasonPhrase())
	}
	c := res.GetWwwAuthenticate()
	if c.GetRealm() != "test.local" || c.GetNonce() == "" || c.GetQop() != "auth" || c.GetScheme() != "Digest" {
		t.Fatalf("www_authenticate %v", c)
	}
	if raw, ok := extension(res, "WWW-Authenticate"); !ok || !strings.Contains(raw, c.GetNonce()) {
		t.Errorf("raw WWW-Authenticate extension %q", raw)
	}
	in := b.register(expires)
	in.Message.Authorization = b.authorization(password, c)
	return r.send(t, in)
}

func TestKamailio(t *testing.T) {
	t.Parallel()
	for _, transport := range []commonpb.Transport{commonpb.Transport_UDP, commonpb.Transport_TCP} {
		t.Run(transport.String(), func(t *testing.T) {
			t.Parallel()
			k := kamailio.Start(t, kamailio.Options{Users: map[string]kamailio.User{
				"alice": {Password: "alicepw"},
				"bob":   {Password: "bobpw", Proxy: true},
				"carol": {Password: "carolpw"},
			}})
			r := startRequester(t, siprequester.Options{})
			contact := fmt.Sprintf("sip:%%s@%s;transport=%s", r.srv.SIPAddr(transport.String()), strings.ToLower(transport.String()))
			newBinding := func(user string) *binding {
				return &binding{user: user, domain: "test.local", callID: user + "-" + transport.String() + "@siprequester.test",
					fromTag: "tag-" + user, target: k.Addr, transport: transport}
			}

			alice := newBinding("alice")
			t.Run("register with digest", func(t *testing.T) {
				res := registerWithAuth(t, r, alice, "alicepw", 600)
				if res.GetResponseType() != sipmessagepb.ResponseType_OK {
					t.Fatalf("REGISTER with credentials: %s %q", res.GetResponseType(), res.GetReasonPhrase())
				}
				if got := res.GetContact(); got.GetExpires() != 600 || got.GetAddress().GetUri().GetUser() != "alice" {
					t.Errorf("contact %v, want alice with expires 600", got)
				}
				if res.GetCallId().GetCallId() != alice.callID || res.GetFrom().GetTag() != alice.fromTag || res.GetTo().GetTag() == "" {
					t.Errorf("call-id %v from %v to %v", res.GetCallId(), res.GetFrom(), res.GetTo())
				}
				if cseq, _ := extension(res, "CSeq"); cseq != "2 REGISTER" {
					t.Errorf("CSeq extension %q, want 2 REGISTER", cseq)
				}
				bindings, err := k.Bindings("alice")
				if err != nil {
					t.Fatal(err)
				}
				if len(bindings) != 1 {
					t.Fatalf("bindings %+v, want one", bindings)
				}
				got := bindings[0]
				if got.CallID != alice.callID || got.CSeq != 2 || got.Address != fmt.Sprintf(contact, "alice") ||
					got.Expires <= 0 || got.Expires > 600 || got.UserAgent != "siprequester-test" {
					t.Errorf("binding %+v, want Call-ID %s, CSeq 2, address %s, expires <= 600", got, alice.callID, fmt.Sprintf(contact, "alice"))
				}
			})

			t.Run("proxy authentication", func(t *testing.T) {
				bob := newBinding("bob")
				res := r.send(t, bob.register(300))
				if res.GetResponseType() != sipmessagepb.ResponseType_PROXY_AUTHENTICATION_REQUIRED || res.GetWwwAuthenticate() != nil {
					t.Fatalf("first REGISTER: %s, www_authenticate %v", res.GetResponseType(), res.GetWwwAuthenticate())
				}
				challenge, ok := extension(res, "Proxy-Authenticate")
				nonce := regexp.MustCompile(`nonce="([^"]+)"`).FindStringSubmatch(challenge)
				if !ok || nonce == nil || !strings.Contains(challenge, `realm="test.local"`) {
					t.Fatalf("Proxy-Authenticate extension %q", challenge)
				}
				response, cnonce := digest("bob", "bobpw", "test.local", nonce[1], bob.requestURI())
				credentials := fmt.Sprintf(`Digest username="bob", realm="test.local", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"`,
					nonce[1], bob.requestURI(), response, cnonce)
				res = r.send(t, bob.register(300, &sipmessagepb.Extension{Name: "Proxy-Authorization", Value: credentials}))
				if res.GetResponseType() != sipmessagepb.ResponseType_OK || res.GetContact().GetExpires() != 300 {
					t.Fatalf("REGISTER with Proxy-Authorization: %s %q, contact %v", res.GetResponseType(), res.GetReasonPhrase(), res.GetContact())
				}
				if b, err := k.Bindings("bob"); err != nil || len(b) != 1 || b[0].CallID != bob.callID {
					t.Errorf("bob's bindings %+v, %v", b, err)
				}
			})

			t.Run("interval too brief", func(t *testing.T) {
				carol := newBinding("carol")
				res := registerWithAuth(t, r, carol, "carolpw", 30)
				if res.GetResponseType() != sipmessagepb.ResponseType_INTERVAL_TOO_BRIEF {
					t.Fatalf("REGISTER with Expires 30: %s %q", res.GetResponseType(), res.GetReasonPhrase())
				}
				if v, ok := extension(res, "Min-Expires"); !ok || v != "60" {
					t.Errorf("Min-Expires extension %q, %v; want 60", v, ok)
				}
				if b, err := k.Bindings("carol"); err != nil || len(b) != 0 {
					t.Errorf("carol's bindings %+v, %v; want none", b, err)
				}
			})

			t.Run("unregister", func(t *testing.T) {
				res := registerWithAuth(t, r, alice, "alicepw", 0)
				if res.GetResponseType() != sipmessagepb.ResponseType_OK {
					t.Fatalf("REGISTER with Expires 0: %s %q", res.GetResponseType(), res.GetReasonPhrase())
				}
				if b, err := k.Bindings("alice"); err != nil || len(b) != 0 {
					t.Errorf("alice's bindings after Expires 0: %+v, %v; want none", b, err)
				}
				d, err := k.Dump()
				if err != nil || len(d["bob"]) != 1 || len(d["alice"]) != 0 {
					t.Errorf("dump %+v, %v; want bob's binding only", d, err)
				}
			})

			t.Run("route to the registrar", func(t *testing.T) {
				host, port, _ := net.SplitHostPort(k.Addr)
				dave := newBinding("dave")
				dave.target = "test.local" // not resolvable: only the Route says where to go
				in := dave.register(300)
				in.Message.Route = []*sipmessagepb.Route{{Address: &sipmessagepb.Address{Uri: &sipmessagepb.SipURI{
					Host: host, Port: atoi(t, port), LrParam: true, TransportParam: strings.ToLower(transport.String()),
				}}}}
				res := r.send(t, in)
				// dave is not in the user table: challenged like any unknown user.
				if res.GetResponseType() != sipmessagepb.ResponseType_UNAUTHORIZED {
					t.Errorf("REGISTER through a Route: %s %q, want UNAUTHORIZED", res.GetResponseType(), res.GetReasonPhrase())
				}
			})
		})
	}
}

// TestKamailioSHA256And403 runs against a registrar that offers SHA-256 and answers
// wrong credentials with 403.
func TestKamailioSHA256And403(t *testing.T) {
	t.Parallel()
	k := kamailio.Start(t, kamailio.Options{
		Users:      map[string]kamailio.User{"alice": {Password: "alicepw"}},
		AuthAlg:    "SHA-256",
		WrongPW403: true,
	})
	r := startRequester(t, siprequester.Options{})
	newBinding := func(callID string) *binding {
		return &binding{user: "alice", domain: "test.local", callID: callID, fromTag: "t", target: k.Addr}
	}

	res := registerWithAuth(t, r, newBinding("sha256"), "alicepw", 300)
	if res.GetResponseType() != sipmessagepb.ResponseType_OK {
		t.Errorf("SHA-256 credentials: %s %q", res.GetResponseType(), res.GetReasonPhrase())
	}

	res = registerWithAuth(t, r, newBinding("wrong"), "wrongpw", 300)
	if res.GetResponseType() != sipmessagepb.ResponseType_FORBIDDEN {
		t.Errorf("wrong password: %s %q, want FORBIDDEN", res.GetResponseType(), res.GetReasonPhrase())
	}
	if b, err := k.Bindings("alice"); err != nil || len(b) != 1 || b[0].CallID != "sha256" {
		t.Errorf("bindings %+v, %v; want the SHA-256 one only", b, err)
	}
}

func atoi(t *testing.T, s string) int32 {
	t.Helper()
	var n int32
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
