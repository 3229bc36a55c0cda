package sipmsg_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipmsg"
)

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
