package sipauth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
)

const secretPassword = "Pa55-w0rd-never-logged"

// renderings returns every way v can reach a log line or a reply.
func renderings(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	out["Sprint"] = fmt.Sprint(v)
	out["in a struct"] = fmt.Sprintf("%+v", struct{ V any }{v})
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("msg", "auth", v)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("msg", "auth", v)
	out["slog text"], out["slog json"] = text.String(), js.String()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	out["json"] = string(b)
	return out
}

func TestAuthorizationRedacted(t *testing.T) {
	ch := sipauth.Challenge{Proxy: true, Realm: "test.local", Nonce: "n", Algorithm: "SHA-256", Qop: "auth"}
	a, err := sipauth.Answer(ch, sipauth.Credentials{Username: "alice", Password: secretPassword}, "REGISTER", "sip:test.local", 1, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Response) != 64 {
		t.Fatalf("response %d chars, want 64", len(a.Response))
	}
	all := renderings(t, a)
	for how, s := range renderings(t, &a) {
		all["pointer "+how] = s
	}
	for how, s := range all {
		if strings.Contains(s, a.Response) || strings.Contains(s, secretPassword) {
			t.Errorf("%s reveals the secret: %s", how, s)
		}
		if !strings.Contains(s, "REDACTED") && !strings.HasSuffix(how, "%x") && !strings.HasSuffix(how, "%X") {
			t.Errorf("%s does not say REDACTED: %s", how, s)
		}
	}
	want := `Digest username="alice", realm="test.local", algorithm=SHA-256, qop=auth, nc=00000001, response="REDACTED"`
	if got := a.String(); got != want {
		t.Errorf("String:\n got %s\nwant %s", got, want)
	}
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, &slog.HandlerOptions{ReplaceAttr: dropTime})).Info("answer", "auth", a)
	wantLog := "level=INFO msg=answer auth.username=alice auth.realm=test.local auth.algorithm=SHA-256 auth.qop=auth auth.nc=00000001 auth.response=REDACTED\n"
	if text.String() != wantLog {
		t.Errorf("slog:\n got %s\nwant %s", text.String(), wantLog)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestCredentialsRedacted(t *testing.T) {
	c := sipauth.Credentials{Username: "alice", Password: secretPassword}
	all := renderings(t, c)
	for how, s := range renderings(t, &c) {
		all["pointer "+how] = s
	}
	for how, s := range all {
		if strings.Contains(s, secretPassword) {
			t.Errorf("%s reveals the password: %s", how, s)
		}
	}
	if got, want := c.String(), `username="alice", password=REDACTED`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

func TestRedact(t *testing.T) {
	const (
		fieldResp = "5f4dcc3b5aa765d61d8327deb882cf99"
		extResp   = "e99a18c428cb38d5f260853678922e03"
		lowerResp = "0d107d09f5bbe40cade3de5c71e9e9b7"
	)
	gw, err := sipauth.GatewayAuth(sipauth.Credentials{Username: "alice", Password: secretPassword})
	if err != nil {
		t.Fatal(err)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+secretPassword))
	msg := &pb.SIPMessage{
		MessageType: &pb.SIPMessage_RequestUri{RequestUri: &pb.SipURI{Host: "test.local", Port: -1}},
		Authorization: &pb.Authorization{Scheme: "Digest", Username: "alice", Realm: "test.local", Nonce: "n",
			Response: fieldResp, Uri: "sip:test.local", Method: "REGISTER", NonceCount: 1},
		Extensions: []*pb.Extension{
			{Name: "CSeq", Value: "2 REGISTER"},
			{Name: "Proxy-Authorization", Value: `Digest username="alice", realm="r", nonce="n", uri="sip:r", response="` + extResp + `", qop=auth, nc=00000001, cnonce="c"`},
			{Name: "authorization", Value: "Digest username=alice,response=" + lowerResp + ",realm=r"},
			{Name: "Authorization", Value: basic},
			{Name: "Proxy-Authorization", Value: `Digest response="` + extResp + ``}, // unterminated: replaced whole
			{Name: "x-gateway-auth", Value: gw},
		},
	}
	before := proto.Clone(msg)

	out := sipauth.Redact(msg)

	if !proto.Equal(msg, before) {
		t.Fatal("Redact changed its input")
	}
	if out.GetAuthorization().GetResponse() != "REDACTED" {
		t.Errorf("field response = %q", out.GetAuthorization().GetResponse())
	}
	if out.GetAuthorization().GetUsername() != "alice" || out.GetAuthorization().GetNonceCount() != 1 {
		t.Errorf("Redact lost non-secret fields: %v", out.GetAuthorization())
	}
	wantExt := []string{
		"2 REGISTER",
		`Digest username="alice", realm="r", nonce="n", uri="sip:r", response="REDACTED", qop=auth, nc=00000001, cnonce="c"`,
		`Digest username=alice,response="REDACTED",realm=r`,
		"REDACTED",
		"REDACTED",
		"REDACTED",
	}
	for i, e := range out.GetExtensions() {
		if e.GetValue() != wantExt[i] {
			t.Errorf("extension %d %s:\n got %s\nwant %s", i, e.GetName(), e.GetValue(), wantExt[i])
		}
	}
	secrets := []string{fieldResp, extResp, lowerResp, gw, secretPassword, basic}
	for how, s := range map[string]string{
		"prototext": prototext.Format(out),
		"protojson": protojson.Format(out),
		"%v":        fmt.Sprintf("%v", out),
	} {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s of the redacted message holds %q", how, secret)
			}
		}
	}
	if sipauth.Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
	if got := sipauth.Redact(&pb.SIPMessage{}); got == nil || !proto.Equal(got, &pb.SIPMessage{}) {
		t.Errorf("Redact(empty) = %v", got)
	}
}

func TestGatewayAuth(t *testing.T) {
	ok := []struct {
		cred sipauth.Credentials
		want string
	}{
		{sipauth.Credentials{Username: "alice", Password: "s3cret"}, "YWxpY2U6czNjcmV0"},
		{sipauth.Credentials{Username: "undefined", Password: "undefined"}, "dW5kZWZpbmVkOnVuZGVmaW5lZA=="},
		{sipauth.Credentials{Username: "jörg", Password: "pä ss+/="}, base64.StdEncoding.EncodeToString([]byte("jörg:pä ss+/="))},
	}
	for _, tt := range ok {
		got, err := sipauth.GatewayAuth(tt.cred)
		if err != nil || got != tt.want {
			t.Errorf("GatewayAuth(%s) = %q, %v; want %q", tt.cred.Username, got, err, tt.want)
		}
	}
	bad := []struct {
		name string
		cred sipauth.Credentials
	}{
		{"empty username", sipauth.Credentials{Password: secretPassword}},
		{"empty password", sipauth.Credentials{Username: "alice"}},
		{"both empty", sipauth.Credentials{}},
		{"colon in username", sipauth.Credentials{Username: "al:ice", Password: secretPassword}},
		{"colon in password", sipauth.Credentials{Username: "alice", Password: secretPassword + ":x"}},
		{"password starts with a colon", sipauth.Credentials{Username: "alice", Password: ":" + secretPassword}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sipauth.GatewayAuth(tt.cred)
			if !errors.Is(err, sipauth.ErrInvalidCredentials) || got != "" {
				t.Fatalf("GatewayAuth = %q, %v; want ErrInvalidCredentials", got, err)
			}
			if tt.cred.Password != "" && strings.Contains(err.Error(), tt.cred.Password) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}
