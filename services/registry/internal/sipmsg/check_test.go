package sipmsg_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
)

func TestEscapeUser(t *testing.T) {
	ok := []struct{ in, want string }{
		{"", ""},
		{"alice", "alice"},
		{"alice smith", "alice%20smith"},
		{"a@b:c<d>\"e", "a%40b%3Ac%3Cd%3E%22e"},
		{"ü", "%C3%BC"},
		{"%7e%7E", "%7e%7E"},
		{"%", "%25"},
		{"%zz", "%25zz"},
		{"+1-555;phone-context=x?a/b&c=$,", "+1-555;phone-context=x?a/b&c=$,"},
		{"//a/b", "%2F/a/b"},
		{"/", "%2F"},
	}
	for _, tt := range ok {
		got, err := sipmsg.EscapeUser(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("EscapeUser(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if again, _ := sipmsg.EscapeUser(got); again != got {
			t.Errorf("EscapeUser is not idempotent on %q: %q", got, again)
		}
	}
	for _, in := range []string{"a\r\nb", "\x00", "a\tb", "\x7f", "\x1f", "a\xff"} {
		if got, err := sipmsg.EscapeUser(in); err == nil {
			t.Errorf("EscapeUser(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseHost(t *testing.T) {
	ok := map[string]string{
		"example.com": "example.com", "example.com.": "example.com.", "a": "a", "a-1.b2": "a-1.b2",
		"192.0.2.1": "192.0.2.1", "::1": "::1", "[::1]": "::1", "[2001:db8::1]": "2001:db8::1",
	}
	for in, want := range ok {
		if got, err := sipmsg.ParseHost(in); err != nil || got != want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", " ", "a b", "a\x00", "a\vb", "a@b", "a/b", "a:5060", "[a]", "[::1", "::1]",
		"fe80::1%eth0", "-a", "a-", "a..b", "1.2.3.4.5", "a.1", "_sip.example", "ex\xffample"} {
		if got, err := sipmsg.ParseHost(in); err == nil {
			t.Errorf("ParseHost(%q) = %q, want an error", in, got)
		} else if strings.ContainsAny(err.Error(), "\x00\v") {
			t.Errorf("ParseHost(%q): error %q holds a control character", in, err)
		}
	}
}

func TestHostPort(t *testing.T) {
	for _, tt := range []struct {
		host string
		port int
		want string
	}{
		{"example.com", 0, "example.com:5060"},
		{"example.com", 5080, "example.com:5080"},
		{"::1", 0, "[::1]:5060"},
		{"[::1]", 5062, "[::1]:5062"},
	} {
		if got := sipmsg.HostPort(tt.host, tt.port); got != tt.want {
			t.Errorf("HostPort(%q, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
	if got := sipmsg.AOR("alice smith", "::1"); got != "sip:alice%20smith@[::1]" {
		t.Errorf("AOR = %q", got)
	}
	if got := sipmsg.AOR("", "[2001:db8::1]"); got != "sip:[2001:db8::1]" {
		t.Errorf("AOR = %q", got)
	}
}

// good is a REGISTER as the engine builds it.
func good(t *testing.T) sipmsg.Register {
	t.Helper()
	gw, err := sipauth.GatewayAuth(sipauth.Credentials{Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	return sipmsg.Register{
		Domain: "sip.provider.net", Port: 5060, Transport: "udp", User: "alice",
		CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 1, Expires: 600,
		EdgePortHost: "sip01.edgeport.net", EdgePortPort: 5060,
		Methods: []string{"INVITE", "MESSAGE"}, UserAgent: "Routr Registry\t(sipreg)", Gin: true,
		GatewayAuth: gw,
	}
}

func TestBuildCheckedGood(t *testing.T) {
	for _, tc := range buildCases(t) {
		req, err := sipmsg.BuildChecked(tc.reg)
		if err != nil {
			t.Errorf("%s: BuildChecked: %v", tc.name, err)
			continue
		}
		if !proto.Equal(req, sipmsg.Build(tc.reg)) {
			t.Errorf("%s: BuildChecked and Build differ", tc.name)
		}
		if err := sipmsg.Check(req); err != nil {
			t.Errorf("%s: Check: %v", tc.name, err)
		}
	}
	if _, err := sipmsg.BuildChecked(good(t)); err != nil {
		t.Errorf("a tab in the User-Agent: %v", err)
	}
}

// Every input value with a character that must not reach the Requester: BuildChecked
// refuses it naming the field; Build still emits nothing of it raw.
func TestBuildHostileInput(t *testing.T) {
	tests := []struct {
		name string
		edit func(*sipmsg.Register)
		want string
	}{
		{"user CRLF", func(r *sipmsg.Register) { r.User = "alice\r\nX-Injected: yes" }, "User: control character U+000D"},
		{"user NUL", func(r *sipmsg.Register) { r.User = "al\x00ice" }, "User: control character U+0000"},
		{"domain NUL", func(r *sipmsg.Register) { r.Domain = "sip\x00.example" }, "Domain: control character U+0000"},
		{"domain VT", func(r *sipmsg.Register) { r.Domain = "sip\v.example" }, "Domain: control character U+000B"},
		{"domain space", func(r *sipmsg.Register) { r.Domain = "sip example" }, `Domain: "sip example" is not a hostname`},
		{"domain empty", func(r *sipmsg.Register) { r.Domain = "" }, "Domain: empty"},
		{"port", func(r *sipmsg.Register) { r.Port = 70000 }, "Port: 70000 out of range"},
		{"transport", func(r *sipmsg.Register) { r.Transport = "udp\r\nX: 1" }, "Transport: "},
		{"call-id CRLF", func(r *sipmsg.Register) { r.CallID = "abc\r\nX: 1" }, "CallID: "},
		{"call-id empty", func(r *sipmsg.Register) { r.CallID = "" }, "CallID: "},
		{"from tag", func(r *sipmsg.Register) { r.FromTag = "t;x=1" }, `FromTag: "t;x=1" is not a token`},
		{"edge port host", func(r *sipmsg.Register) { r.EdgePortHost = "edge\n" }, "EdgePortHost: control character U+000A"},
		{"edge port port", func(r *sipmsg.Register) { r.EdgePortPort = -5 }, "EdgePortPort: "},
		{"method", func(r *sipmsg.Register) { r.Methods = []string{"INVITE", "MES\x00SAGE"} }, `Methods[1]: "MES\x00SAGE" is not a token`},
		{"user agent CRLF", func(r *sipmsg.Register) { r.UserAgent = "Routr\r\nX-Injected: yes" }, "UserAgent: control character U+000D"},
		{"user agent NUL", func(r *sipmsg.Register) { r.UserAgent = "Routr\x00" }, "UserAgent: control character U+0000"},
		{"user agent NEL", func(r *sipmsg.Register) { r.UserAgent = "Routr\u0085" }, "UserAgent: control character U+0085"},
		{"user agent invalid UTF-8", func(r *sipmsg.Register) { r.UserAgent = "Routr\xff" }, "UserAgent: invalid UTF-8"},
		{"gateway auth", func(r *sipmsg.Register) { r.GatewayAuth = "YWxp\r\nX: 1" }, "GatewayAuth: control character U+000D"},
		{"auth realm quote", func(r *sipmsg.Register) {
			r.Auth = &sipauth.Authorization{Username: "alice", Realm: `r", x="y`, Nonce: "n", URI: "sip:r", Response: "ff"}
		}, `Auth.Realm: '"' cannot be quoted as is`},
		{"auth nonce LF", func(r *sipmsg.Register) {
			r.Auth = &sipauth.Authorization{Username: "alice", Realm: "r", Nonce: "n\n", URI: "sip:r", Response: "ff"}
		}, "Auth.Nonce: control character U+000A"},
		{"auth algorithm", func(r *sipmsg.Register) {
			r.Auth = &sipauth.Authorization{Username: "alice", Realm: "r", Nonce: "n", URI: "sip:r", Response: "ff", Algorithm: "MD5, x"}
		}, "Auth.Algorithm: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good(t)
			tt.edit(&r)
			req, err := sipmsg.BuildChecked(r)
			if !errors.Is(err, sipmsg.ErrInvalidRequest) || req != nil {
				t.Fatalf("BuildChecked = %v, %v; want ErrInvalidRequest", req, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n\x00\v\u0085") || !strings.HasPrefix(err.Error(), "invalid SIP request: ") {
				t.Errorf("error %q", err)
			}
			assertNoControl(t, sipmsg.Build(r))
			if _, err := proto.Marshal(sipmsg.Build(r)); err != nil {
				t.Errorf("Build's request does not marshal: %v", err)
			}
		})
	}
}

// assertNoControl fails when any string field of req holds a control character (HTAB
// aside) or invalid UTF-8.
func assertNoControl(t *testing.T, req *requesterv2beta1.SendMessageRequest) {
	t.Helper()
	forEachString(req.ProtoReflect(), "", func(path, s string) {
		for _, c := range []byte(s) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				t.Errorf("%s = %q holds a control character", path, s)
				return
			}
		}
		if strings.Contains(s, "\u0085") || !isUTF8(s) {
			t.Errorf("%s = %q holds NEL or invalid UTF-8", path, s)
		}
	})
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }

// forEachString calls f for every set string of m (lists and maps included).
func forEachString(m protoreflect.Message, path string, f func(path, s string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				if fd.Kind() == protoreflect.MessageKind {
					forEachString(v.List().Get(i).Message(), p, f)
				} else if fd.Kind() == protoreflect.StringKind {
					f(p, v.List().Get(i).String())
				}
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				f(p+"(key)", k.String())
				if fd.MapValue().Kind() == protoreflect.StringKind {
					f(p, mv.String())
				}
				return true
			})
		case fd.Kind() == protoreflect.MessageKind:
			forEachString(v.Message(), p, f)
		case fd.Kind() == protoreflect.StringKind:
			f(p, v.String())
		}
		return true
	})
}

func TestCheck(t *testing.T) {
	base := func() *requesterv2beta1.SendMessageRequest { return sipmsg.Build(good(t)) }
	if err := sipmsg.Check(base()); err != nil {
		t.Fatalf("Check(Build(good)) = %v", err)
	}
	tests := []struct {
		name string
		edit func(*requesterv2beta1.SendMessageRequest)
		want string
	}{
		{"nil message", func(r *requesterv2beta1.SendMessageRequest) { r.Message = nil }, "message: missing"},
		{"target", func(r *requesterv2beta1.SendMessageRequest) { r.Target = "sip.example.com" }, `target: "sip.example.com" is not host:port`},
		{"target port 0", func(r *requesterv2beta1.SendMessageRequest) { r.Target = "sip.example.com:0" }, "target: "},
		{"target IPv6 unbracketed", func(r *requesterv2beta1.SendMessageRequest) { r.Target = "::1:5060" }, "target: "},
		{"target CR", func(r *requesterv2beta1.SendMessageRequest) { r.Target = "a\r:5060" }, "target: control character U+000D"},
		{"request uri host", func(r *requesterv2beta1.SendMessageRequest) { r.Message.GetRequestUri().Host = "::1" },
			"message.request_uri.host: \"::1\": an IPv6 address must be in brackets"},
		{"from user", func(r *requesterv2beta1.SendMessageRequest) { r.Message.From.Address.Uri.User = "a b" },
			`message.from.address.uri.user: "a b" is not a user part`},
		{"to user LF", func(r *requesterv2beta1.SendMessageRequest) { r.Message.To.Address.Uri.User = "a\nb" },
			"message.to.address.uri.user: control character U+000A"},
		{"from tag", func(r *requesterv2beta1.SendMessageRequest) { r.Message.From.Tag = "x y" }, `message.from.tag: "x y" is not a token`},
		{"from port 0", func(r *requesterv2beta1.SendMessageRequest) { r.Message.From.Address.Uri.Port = 0 }, "message.from.address.uri.port: 0"},
		{"call-id", func(r *requesterv2beta1.SendMessageRequest) { r.Message.CallId.CallId = "" }, "message.call_id.call_id: empty"},
		{"extension value", func(r *requesterv2beta1.SendMessageRequest) {
			r.Message.Extensions[1].Value = "Routr\r\nX-Injected: yes"
		},
			"message.extensions[1].value: control character U+000D (header User-Agent)"},
		{"extension value NUL", func(r *requesterv2beta1.SendMessageRequest) { r.Message.Extensions[0].Value = "1 REGISTER\x00" },
			"message.extensions[0].value: control character U+0000 (header CSeq)"},
		{"extension name", func(r *requesterv2beta1.SendMessageRequest) { r.Message.Extensions[0].Name = "X-A: b\r\nX-C" },
			"message.extensions[0].name: control character U+000D"},
		{"extension name not a token", func(r *requesterv2beta1.SendMessageRequest) { r.Message.Extensions[0].Name = "X A" },
			`message.extensions[0].name: "X A" is not a token`},
		{"authorization realm", func(r *requesterv2beta1.SendMessageRequest) {
			r.Message.Authorization = &pb.Authorization{Scheme: "Digest", Realm: `a"b`, Username: "u", Nonce: "n", Uri: "sip:r", Response: "f", Method: "REGISTER"}
		}, `message.authorization.realm: '"' cannot be quoted as is`},
		{"route parameter", func(r *requesterv2beta1.SendMessageRequest) {
			r.Message.Route[0].Parameters = map[string]string{"a": "1", "b": "x\r\ny"}
		}, `message.route[0].parameters["b"]: control character U+000D`},
		{"route parameter key", func(r *requesterv2beta1.SendMessageRequest) {
			r.Message.Route[0].Parameters = map[string]string{"a b": "1"}
		}, `message.route[0].parameters["a b"] (key): "a b" is not a token`},
		{"body", func(r *requesterv2beta1.SendMessageRequest) { r.Message.Body = "x\x00" }, "message.body: control character U+0000"},
		{"invalid UTF-8", func(r *requesterv2beta1.SendMessageRequest) { r.Message.ReasonPhrase = "\xff" }, "message.reason_phrase: invalid UTF-8"},
		{"via", func(r *requesterv2beta1.SendMessageRequest) { r.Message.Via = []*pb.Via{{Host: "h", Branch: "z9\n"}} }, "message.via[0].branch: control character U+000A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := base()
			tt.edit(req)
			err := sipmsg.Check(req)
			if !errors.Is(err, sipmsg.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want an error containing %q", err, tt.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n\x00") {
				t.Errorf("error %q holds a control character", err)
			}
		})
	}
	if err := sipmsg.Check(nil); !errors.Is(err, sipmsg.ErrInvalidRequest) {
		t.Errorf("Check(nil) = %v", err)
	}
}

// Check and Build agree with the digest answers sipauth gives, and the redacted copy
// that Explain shows is still a clean message.
func TestCheckAuthAndRedact(t *testing.T) {
	for _, tc := range buildCases(t) {
		req := sipmsg.Build(tc.reg)
		red := sipauth.Redact(req.GetMessage())
		if err := sipmsg.Check(&requesterv2beta1.SendMessageRequest{Target: req.GetTarget(), Message: red}); err != nil {
			t.Errorf("%s: the redacted message: %v", tc.name, err)
		}
		if v, ok := sipmsg.Header(red, sipmsg.GatewayAuthHeader); ok && v != "REDACTED" {
			t.Errorf("%s: X-Gateway-Auth %q shown", tc.name, v)
		}
		if a := tc.reg.Auth; a != nil {
			if a.Proxy {
				v, _ := sipmsg.Header(red, "Proxy-Authorization")
				if !strings.Contains(v, `response="REDACTED"`) || strings.Contains(v, a.Response) {
					t.Errorf("%s: Proxy-Authorization %q", tc.name, v)
				}
			} else if got := red.GetAuthorization().GetResponse(); got != "REDACTED" {
				t.Errorf("%s: authorization response %q shown", tc.name, got)
			}
		}
	}
	// A hostile value is scrubbed before redaction sees it, and stays scrubbed.
	r := good(t)
	r.UserAgent = "Routr\r\nX-Injected: yes"
	red := sipauth.Redact(sipmsg.Build(r).GetMessage())
	if v, _ := sipmsg.Header(red, "User-Agent"); v != "Routr%0D%0AX-Injected: yes" {
		t.Errorf("User-Agent after Build and Redact = %q", v)
	}
}
