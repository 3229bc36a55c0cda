package trunk_test

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/trunk"
)

// secretMarker replaces the fuzzed password in a second run: no error may show it.
const secretMarker = "pw-MARKER-7f3a9c"

// FuzzTrunkToRegister builds a Trunk proto from fuzzed user, host, transport, port,
// credentials and name, runs FromProto, and when it succeeds builds the REGISTER as the
// engine does (sipmsg.Register from the first URI, X-Gateway-Auth, then sipmsg.Build;
// once more with a digest answer when the trunk has credentials). It asserts that no
// string field of the request holds a CR, LF or NUL (protoreflect walk), that
// sipmsg.Check and BuildChecked accept it, that the Request-URI, From and To URIs, as
// Routr's Requester writes them, parse with sipgo (sip.ParseUri) to the same user, host
// and port and pass a strict RFC 3261 grammar check of their own, and that the whole
// request, as the Requester writes it, parses with sipgo into exactly the headers written
// (nothing injected). An error must be ErrInvalid, one line, and never show the password.
// The seed corpus is in testdata/fuzz/FuzzTrunkToRegister.
func FuzzTrunkToRegister(f *testing.F) {
	f.Add("1001", "sip.provider.net", "UDP", int32(5060), "alice", "s3cret", "Provider")
	f.Fuzz(func(t *testing.T, user, host, transport string, port int32, username, password, name string) {
		in := fuzzTrunk(user, host, transport, port, username, password, name)
		tr, err := trunk.FromProto(in)
		if err != nil {
			if !errors.Is(err, trunk.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n\x00") {
				t.Fatalf("error %q holds CR, LF or NUL", err)
			}
			if in.OutboundCredentials != nil {
				in.OutboundCredentials.Password = secretMarker
				if _, err := trunk.FromProto(in); err != nil && strings.Contains(err.Error(), secretMarker) {
					t.Fatalf("error %q shows the password", err)
				}
			}
			return
		}
		if len(tr.URIs) != 1 {
			t.Fatalf("%d URIs from one", len(tr.URIs))
		}
		_, warnings, _ := trunk.Read(in)
		for _, w := range warnings {
			if strings.ContainsAny(w, "\r\n\x00") {
				t.Fatalf("warning %q holds CR, LF or NUL", w)
			}
		}
		if strings.ContainsAny(tr.Ref+tr.Name, "\r\n\x00") || strings.ContainsAny(tr.Username, "\r\n\x00") {
			t.Fatalf("trunk %+v holds CR, LF or NUL", tr)
		}
		u := tr.URIs[0]
		aorUser := tr.User(u)
		if aorUser == "" {
			t.Fatal("no AOR user")
		}
		// The user part decodes back to what the API gave (spaces trimmed).
		if wantRaw := strings.Trim(user, " "); !strings.Contains(user, "%") && !strings.Contains(username, "%") {
			if wantRaw == "" {
				wantRaw = username
			}
			if got, err := url.PathUnescape(aorUser); err != nil || got != wantRaw {
				t.Fatalf("user %q decodes to %q (%v), want %q", aorUser, got, err, wantRaw)
			}
		}
		reg := sipmsg.Register{
			Domain: u.Host, Port: u.Port, Transport: u.Transport, User: aorUser,
			CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 1, Expires: 600,
			EdgePortHost: "sip01.edgeport.net", EdgePortPort: 5060,
			Methods: []string{"INVITE", "MESSAGE"}, UserAgent: "Routr Registry (sipreg)", Gin: true,
			GatewayAuth: "YW5vbnltb3VzOmFub255bW91cw==",
		}
		if tr.HasCredentials() {
			gw, err := sipauth.GatewayAuth(sipauth.Credentials{Username: tr.Username, Password: tr.Password})
			if err != nil {
				// The engine marks such a trunk rejected ("cannot travel in X-Gateway-Auth").
				if !errors.Is(err, sipauth.ErrInvalidCredentials) || strings.Contains(err.Error(), tr.Password) && len(tr.Password) > 3 {
					t.Fatalf("GatewayAuth: %v", err)
				}
				return
			}
			reg.GatewayAuth = gw
		}
		// The engine's target is net.JoinHostPort(u.Host, port): the same as Build's.
		if want := net.JoinHostPort(u.Host, strconv.Itoa(portOr5060(u.Port))); reg.Target() != want {
			t.Fatalf("target %q, engine's %q", reg.Target(), want)
		}
		checkRegister(t, reg)

		if tr.HasCredentials() {
			for _, proxy := range []bool{false, true} {
				ch := sipauth.Challenge{Proxy: proxy, Realm: "sip.provider.net", Nonce: "5f8a7c1e0b", Qop: "auth", Opaque: "op"}
				a, err := sipauth.Answer(ch, sipauth.Credentials{Username: tr.Username, Password: tr.Password}, "REGISTER", reg.RequestURI(), 1, "0a4f113b")
				if err != nil {
					if !errors.Is(err, sipauth.ErrInvalidCredentials) {
						t.Fatalf("Answer: %v", err)
					}
					continue // the engine records auth-failed
				}
				withAuth := reg
				withAuth.Auth = &a
				checkRegister(t, withAuth)
			}
		}
	})
}

func fuzzTrunk(user, host, transport string, port int32, username, password, name string) *trunksv2beta1.Trunk {
	in := &trunksv2beta1.Trunk{Ref: "trunk-1", Name: name, SendRegister: true,
		Uris: []*trunksv2beta1.TrunkURI{{Host: host, Port: port, Transport: transport, User: user, Enabled: true}}}
	if username != "" || password != "" {
		in.OutboundCredentials = &credentialsv2beta1.Credentials{Ref: "cred-1", Username: username, Password: password}
	}
	return in
}

func portOr5060(p int) int {
	if p == 0 {
		return 5060
	}
	return p
}

// checkRegister builds reg as the engine does and checks the request.
func checkRegister(t *testing.T, reg sipmsg.Register) {
	t.Helper()
	req := sipmsg.Build(reg)
	walkStrings(req.ProtoReflect(), "", func(path, s string) {
		if strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("%s = %q holds CR, LF or NUL", path, s)
		}
	})
	if err := sipmsg.Check(req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	checked, err := sipmsg.BuildChecked(reg)
	if err != nil || !proto.Equal(checked, req) {
		t.Fatalf("BuildChecked = %v, %v", checked, err)
	}
	if _, err := proto.Marshal(req); err != nil {
		t.Fatalf("the request does not marshal: %v", err)
	}
	msg := req.GetMessage()
	port := portOr5060(reg.Port)
	host := msg.GetRequestUri().GetHost()
	if !strictHost(host) {
		t.Fatalf("host %q fails the strict grammar", host)
	}

	// The Request-URI, as the Requester writes it: sip:[user@]target;transport=x.
	ruri := "sip:" + reg.Target() + ";transport=" + reg.Transport
	if ruri != reg.RequestURI() {
		t.Fatalf("RequestURI %q, the Requester writes %q", reg.RequestURI(), ruri)
	}
	parseURI(t, "Request-URI", ruri, "", host, port)
	// From and To, as the Requester writes a SipURI.
	for _, a := range []*pb.Address{msg.GetFrom().GetAddress(), msg.GetTo().GetAddress()} {
		u := a.GetUri()
		if !strictUser(u.GetUser()) {
			t.Fatalf("user %q fails the strict grammar", u.GetUser())
		}
		parseURI(t, "From/To", renderURI(u), u.GetUser(), host, -1)
	}
	if aor := sipmsg.AOR(reg.User, reg.Domain); aor != renderURI(msg.GetFrom().GetAddress().GetUri()) {
		t.Fatalf("AOR %q differs from From %q", aor, renderURI(msg.GetFrom().GetAddress().GetUri()))
	}

	// The whole request, as the Requester writes it, reads back header for header.
	text, n := renderRequest(req)
	parsed, err := sip.NewParser().ParseSIP([]byte(text))
	if err != nil {
		t.Fatalf("sipgo cannot parse the request: %v\n%s", err, text)
	}
	r, ok := parsed.(*sip.Request)
	if !ok {
		t.Fatalf("not a request:\n%s", text)
	}
	if got := len(r.Headers()); got != n {
		t.Fatalf("%d headers read back, %d written:\n%s", got, n, text)
	}
	if r.From() == nil || r.From().Address.User != msg.GetFrom().GetAddress().GetUri().GetUser() || r.From().Address.Host != host ||
		r.To() == nil || r.To().Address.User != msg.GetTo().GetAddress().GetUri().GetUser() ||
		r.Recipient.Host != host || r.Recipient.Port != port || r.CallID() == nil || string(*r.CallID()) != reg.CallID {
		t.Fatalf("request reads back as From %v, To %v, Request-URI %v:\n%s", r.From(), r.To(), r.Recipient, text)
	}
}

// parseURI parses s with sipgo and compares its parts (port -1: none).
func parseURI(t *testing.T, what, s, user, host string, port int) {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("%s %q does not parse: %v", what, s, err)
	}
	wantPort := port
	if port < 0 {
		wantPort = 0
	}
	if u.Scheme != "sip" || u.User != user || u.Password != "" || u.Host != host || u.Port != wantPort || u.Headers.Length() != 0 {
		t.Fatalf("%s %q parses as scheme %q user %q password %q host %q port %d headers %v; want user %q host %q port %d",
			what, s, u.Scheme, u.User, u.Password, u.Host, u.Port, u.Headers, user, host, wantPort)
	}
}

var (
	userRE     = regexp.MustCompile(`^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$`)
	hostnameRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?$`)
	ipv4RE     = regexp.MustCompile(`^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$`)
	ipv6RE     = regexp.MustCompile(`^\[[0-9A-Fa-f:.]+\]$`)
)

// strictUser is RFC 3261 `user`, written out independently of sipmsg.
func strictUser(s string) bool { return userRE.MatchString(s) }

// strictHost is RFC 3261 `host`: hostname, IPv4address or IPv6reference (the address
// itself checked by net.ParseIP).
func strictHost(s string) bool {
	if ipv6RE.MatchString(s) {
		ip := net.ParseIP(s[1 : len(s)-1])
		return ip != nil && strings.Contains(s, ":")
	}
	return ipv4RE.MatchString(s) || hostnameRE.MatchString(s) && !ipv4RE.MatchString(strings.TrimSuffix(s, "."))
}

// renderURI writes a SipURI as Routr's Requester does (port 0 written, negative left
// out; the host written as given).
func renderURI(u *pb.SipURI) string {
	var b strings.Builder
	b.WriteString("sip:")
	if u.GetUser() != "" {
		b.WriteString(u.GetUser() + "@")
	}
	b.WriteString(u.GetHost())
	if u.GetPort() >= 0 {
		b.WriteString(":" + strconv.Itoa(int(u.GetPort())))
	}
	if u.GetTransportParam() != "" {
		b.WriteString(";transport=" + u.GetTransportParam())
	}
	if u.GetLrParam() {
		b.WriteString(";lr")
	}
	return b.String()
}

// renderRequest writes req as the Requester does (its own Via and Contact included) and
// returns the text and the number of header lines.
func renderRequest(req *requesterv2beta1.SendMessageRequest) (string, int) {
	msg := req.GetMessage()
	var hdrs []string
	add := func(name, value string) { hdrs = append(hdrs, name+": "+value) }
	add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport")
	add("Max-Forwards", strconv.Itoa(int(msg.GetMaxForwards().GetMaxForwards())))
	for _, r := range msg.GetRoute() {
		add("Route", "<"+renderURI(r.GetAddress().GetUri())+">")
	}
	add("From", "<"+renderURI(msg.GetFrom().GetAddress().GetUri())+">;tag="+msg.GetFrom().GetTag())
	add("To", "<"+renderURI(msg.GetTo().GetAddress().GetUri())+">")
	add("Call-ID", msg.GetCallId().GetCallId())
	add("Contact", "<sip:127.0.0.1:5070;transport=udp>")
	add("Expires", strconv.Itoa(int(msg.GetExpires().GetExpires())))
	if a := msg.GetAuthorization(); a != nil {
		add("Authorization", fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", qop=%s, nc=%08x, cnonce="%s", opaque="%s"`,
			a.GetUsername(), a.GetRealm(), a.GetNonce(), a.GetUri(), a.GetResponse(), a.GetQop(), a.GetNonceCount(), a.GetCNonce(), a.GetOpaque()))
	}
	for _, e := range msg.GetExtensions() {
		add(e.GetName(), e.GetValue())
	}
	add("Content-Length", "0")
	ruri := "sip:" + req.GetTarget() + ";transport=" + msg.GetRequestUri().GetTransportParam()
	return "REGISTER " + ruri + " SIP/2.0\r\n" + strings.Join(hdrs, "\r\n") + "\r\n\r\n", len(hdrs)
}

// walkStrings calls f for every set string of m, lists and maps included.
func walkStrings(m protoreflect.Message, path string, f func(path, s string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				switch fd.Kind() {
				case protoreflect.MessageKind:
					walkStrings(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), f)
				case protoreflect.StringKind:
					f(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i).String())
				}
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				f(p+"(key)", k.String())
				if fd.MapValue().Kind() == protoreflect.StringKind {
					f(p+"["+k.String()+"]", mv.String())
				}
				return true
			})
		case fd.Kind() == protoreflect.MessageKind:
			walkStrings(v.Message(), p, f)
		case fd.Kind() == protoreflect.StringKind:
			f(p, v.String())
		}
		return true
	})
}
