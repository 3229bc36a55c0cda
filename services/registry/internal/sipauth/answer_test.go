package sipauth_test

import (
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	"sipreg.dev/services/registry/internal/sipauth"
)

// The expected responses of the SIP cases were computed outside Go (Python hashlib).
func TestAnswer(t *testing.T) {
	tests := []struct {
		name         string
		ch           sipauth.Challenge
		cred         sipauth.Credentials
		method, uri  string
		nc           uint32
		cnonce       string
		wantResponse string
		wantNC       uint32
		wantQop      string
	}{
		{
			name: "RFC 2617 §3.5 (MD5, qop=auth)",
			ch: sipauth.Challenge{Realm: "testrealm@host.com", Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
				Opaque: "5ccc069c403ebaf9f0171e9517f40e41", Qop: "auth,auth-int"},
			cred:   sipauth.Credentials{Username: "Mufasa", Password: "Circle Of Life"},
			method: "GET", uri: "/dir/index.html", nc: 1, cnonce: "0a4f113b",
			wantResponse: "6629fae49393a05397450978507c4ef1", wantNC: 1, wantQop: "auth",
		},
		{
			name: "RFC 7616 §3.9.1 (SHA-256, qop=auth)",
			ch: sipauth.Challenge{Realm: "http-auth@example.org", Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
				Opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", Algorithm: "SHA-256", Qop: "auth, auth-int"},
			cred:   sipauth.Credentials{Username: "Mufasa", Password: "Circle of Life"},
			method: "GET", uri: "/dir/index.html", nc: 1, cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			wantResponse: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", wantNC: 1, wantQop: "auth",
		},
		{
			name:   "SIP REGISTER, MD5 (no algorithm named), qop=auth",
			ch:     sipauth.Challenge{Realm: "test.local", Nonce: "awPnCWsDeadBeef0123456789", Qop: "auth"},
			cred:   sipauth.Credentials{Username: "alice", Password: "s3cr3t-pw"},
			method: "REGISTER", uri: "sip:test.local;transport=udp", nc: 1, cnonce: "0123456789abcdef",
			wantResponse: "55b54cd8d0e192fba66358c8adf66e60", wantNC: 1, wantQop: "auth",
		},
		{
			name:   "SIP REGISTER, SHA-256 from a 407, second use of the nonce",
			ch:     sipauth.Challenge{Proxy: true, Realm: "test.local", Nonce: "awPnCWsDfeedface", Algorithm: "SHA-256", Qop: "auth"},
			cred:   sipauth.Credentials{Username: "bob", Password: "b0b-pass"},
			method: "REGISTER", uri: "sip:test.local:5060;transport=tcp", nc: 2, cnonce: "fedcba9876543210",
			wantResponse: "f26e87572f55341a41d1f4cd65ec7268fa053aa2396b509a610b28621e51aad3", wantNC: 2, wantQop: "auth",
		},
		{
			name:   "SIP REGISTER without qop (RFC 2069): nc and cnonce unused",
			ch:     sipauth.Challenge{Realm: "test.local", Nonce: "abc123nonce", Algorithm: "MD5"},
			cred:   sipauth.Credentials{Username: "alice", Password: "s3cr3t-pw"},
			method: "REGISTER", uri: "sip:test.local", nc: 7, cnonce: "ignored",
			wantResponse: "55e0d72c7809a5ca03d65008a0154083",
		},
		{
			name:   "nc 0 with qop is taken as 1",
			ch:     sipauth.Challenge{Realm: "test.local", Nonce: "awPnCWsDeadBeef0123456789", Qop: "auth"},
			cred:   sipauth.Credentials{Username: "alice", Password: "s3cr3t-pw"},
			method: "REGISTER", uri: "sip:test.local;transport=udp", nc: 0, cnonce: "0123456789abcdef",
			wantResponse: "55b54cd8d0e192fba66358c8adf66e60", wantNC: 1, wantQop: "auth",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := sipauth.Answer(tt.ch, tt.cred, tt.method, tt.uri, tt.nc, tt.cnonce)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			wantCnonce := tt.cnonce
			if tt.wantQop == "" {
				wantCnonce = ""
			}
			want := sipauth.Authorization{
				Proxy: tt.ch.Proxy, Username: tt.cred.Username, Realm: tt.ch.Realm, Nonce: tt.ch.Nonce, URI: tt.uri,
				Response: tt.wantResponse, Algorithm: tt.ch.Algorithm, Qop: tt.wantQop, Cnonce: wantCnonce,
				Opaque: tt.ch.Opaque, NC: tt.wantNC,
			}
			if a != want {
				// Authorization redacts itself in %v; compare the fields that differ by hand.
				t.Errorf("Answer response ok=%v; got header %s\nwant header %s",
					a.Response == want.Response, a.Header(), want.Header())
			}
		})
	}
}

func TestAnswerFromParsedChallenge(t *testing.T) {
	msg := response(unauthorized, &pb.WWWAuthenticate{Scheme: "Digest", Realm: "test.local", Nonce: "awPnCWsDeadBeef0123456789", Qop: "auth"})
	ch, err := sipauth.ChallengeFrom(msg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := sipauth.Answer(ch, sipauth.Credentials{Username: "alice", Password: "s3cr3t-pw"}, "REGISTER", "sip:test.local;transport=udp", 1, "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	want := `Digest username="alice", realm="test.local", nonce="awPnCWsDeadBeef0123456789", uri="sip:test.local;transport=udp", ` +
		`response="55b54cd8d0e192fba66358c8adf66e60", qop=auth, nc=00000001, cnonce="0123456789abcdef"`
	if got := a.Header(); got != want {
		t.Errorf("Header:\n got %s\nwant %s", got, want)
	}
}

func TestAnswerRandomCnonce(t *testing.T) {
	ch := sipauth.Challenge{Realm: "r", Nonce: "n", Qop: "auth"}
	cred := sipauth.Credentials{Username: "u", Password: "p"}
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 8 {
		a, err := sipauth.Answer(ch, cred, "REGISTER", "sip:r", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		if !hex32.MatchString(a.Cnonce) {
			t.Fatalf("cnonce %q is not 32 hex digits", a.Cnonce)
		}
		if seen[a.Cnonce] {
			t.Fatalf("cnonce %q repeated", a.Cnonce)
		}
		seen[a.Cnonce] = true
		// The response is computed with the cnonce that is returned.
		b, err := sipauth.Answer(ch, cred, "REGISTER", "sip:r", 1, a.Cnonce)
		if err != nil {
			t.Fatal(err)
		}
		if a.Response != b.Response {
			t.Fatal("the response does not match the returned cnonce")
		}
	}
}

func TestAnswerErrors(t *testing.T) {
	const password = "hunter2-very-secret"
	good := sipauth.Challenge{Realm: "r", Nonce: "n", Qop: "auth"}
	cred := sipauth.Credentials{Username: "alice", Password: password}
	tests := []struct {
		name        string
		ch          sipauth.Challenge
		cred        sipauth.Credentials
		method, uri string
		nc          uint32
		cnonce      string
		want        error
	}{
		{"MD5-sess", sipauth.Challenge{Nonce: "n", Algorithm: "MD5-sess"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrUnsupportedAlgorithm},
		{"SHA-512", sipauth.Challenge{Nonce: "n", Algorithm: "SHA-512"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrUnsupportedAlgorithm},
		{"qop auth-int only", sipauth.Challenge{Nonce: "n", Qop: "auth-int"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrUnsupportedQop},
		{"no nonce", sipauth.Challenge{Realm: "r"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"empty username", good, sipauth.Credentials{Password: password}, "REGISTER", "sip:r", 1, "", sipauth.ErrInvalidCredentials},
		{"CRLF in username", good, sipauth.Credentials{Username: "a\r\nX-Evil: 1", Password: password}, "REGISTER", "sip:r", 1, "", sipauth.ErrInvalidCredentials},
		{"empty method", good, cred, "", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"empty uri", good, cred, "REGISTER", "", 1, "", sipauth.ErrMalformedChallenge},
		{"LF in uri", good, cred, "REGISTER", "sip:r\n", 1, "", sipauth.ErrMalformedChallenge},
		{"NUL in nonce", sipauth.Challenge{Nonce: "n\x00"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"CR in realm", sipauth.Challenge{Realm: "r\r", Nonce: "n"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"DEL in opaque", sipauth.Challenge{Nonce: "n", Opaque: "\x7f"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"CR in cnonce", good, cred, "REGISTER", "sip:r", 1, "c\r", sipauth.ErrMalformedChallenge},
		{"quote in username", good, sipauth.Credentials{Username: `a", x="y`, Password: password}, "REGISTER", "sip:r", 1, "", sipauth.ErrInvalidCredentials},
		{"backslash in username", good, sipauth.Credentials{Username: `a\`, Password: password}, "REGISTER", "sip:r", 1, "", sipauth.ErrInvalidCredentials},
		{"NEL in username", good, sipauth.Credentials{Username: "a\u0085", Password: password}, "REGISTER", "sip:r", 1, "", sipauth.ErrInvalidCredentials},
		{"invalid UTF-8 in username", good, sipauth.Credentials{Username: "a\xff", Password: password}, "REGISTER", "sip:r", 1, "", sipauth.ErrInvalidCredentials},
		{"quote in realm", sipauth.Challenge{Realm: `r"`, Nonce: "n"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"backslash in nonce", sipauth.Challenge{Nonce: `n\`}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"CRLF after the algorithm", sipauth.Challenge{Nonce: "n", Algorithm: "MD5\r\nX-Evil: 1"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrUnsupportedAlgorithm},
		{"CR after the algorithm", sipauth.Challenge{Nonce: "n", Algorithm: "MD5\r"}, cred, "REGISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
		{"tab in uri", good, cred, "REGISTER", "sip:r\t", 1, "", sipauth.ErrMalformedChallenge},
		{"quote in uri", good, cred, "REGISTER", `sip:r"`, 1, "", sipauth.ErrMalformedChallenge},
		{"method not a token", good, cred, "REG ISTER", "sip:r", 1, "", sipauth.ErrMalformedChallenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sipauth.Answer(tt.ch, tt.cred, tt.method, tt.uri, tt.nc, tt.cnonce)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Answer error = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
	t.Run("nonce count above MaxInt32", func(t *testing.T) {
		if _, err := sipauth.Answer(good, cred, "REGISTER", "sip:r", math.MaxInt32+1, ""); err == nil {
			t.Fatal("Answer accepted a nonce count Routr cannot carry")
		}
		if _, err := sipauth.Answer(good, cred, "REGISTER", "sip:r", math.MaxInt32, ""); err != nil {
			t.Fatalf("Answer(MaxInt32): %v", err)
		}
	})
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name string
		a    sipauth.Authorization
		want string
	}{
		{
			name: "MD5, qop, opaque",
			a: sipauth.Authorization{Username: "alice", Realm: "test.local", Nonce: "n1", URI: "sip:test.local;transport=udp",
				Response: "0123abcd", Algorithm: "MD5", Qop: "auth", NC: 1, Cnonce: "c1", Opaque: "op"},
			want: `Digest username="alice", realm="test.local", nonce="n1", uri="sip:test.local;transport=udp", response="0123abcd", ` +
				`algorithm=MD5, qop=auth, nc=00000001, cnonce="c1", opaque="op"`,
		},
		{
			name: "no algorithm in the challenge, no opaque",
			a: sipauth.Authorization{Username: "alice", Realm: "test.local", Nonce: "n1", URI: "sip:test.local",
				Response: "0123abcd", Qop: "auth", NC: 0x1a, Cnonce: "c1"},
			want: `Digest username="alice", realm="test.local", nonce="n1", uri="sip:test.local", response="0123abcd", ` +
				`qop=auth, nc=0000001a, cnonce="c1"`,
		},
		{
			name: "no qop (RFC 2069), algorithm kept as written",
			a: sipauth.Authorization{Username: "alice", Realm: "r", Nonce: "n", URI: "sip:r", Response: "ff",
				Algorithm: "sha-256", Opaque: "o"},
			want: `Digest username="alice", realm="r", nonce="n", uri="sip:r", response="ff", algorithm=sha-256, opaque="o"`,
		},
		{
			name: "quotes and backslashes are escaped",
			a:    sipauth.Authorization{Username: `a"b\c`, Realm: `r"`, Nonce: `n\`, URI: "sip:r", Response: "ff"},
			want: `Digest username="a\"b\\c", realm="r\"", nonce="n\\", uri="sip:r", response="ff"`,
		},
		{
			name: "proxy: same value",
			a: sipauth.Authorization{Proxy: true, Username: "bob", Realm: "test.local", Nonce: "n", URI: "sip:test.local",
				Response: "ff", Algorithm: "SHA-256", Qop: "auth", NC: 2, Cnonce: "c"},
			want: `Digest username="bob", realm="test.local", nonce="n", uri="sip:test.local", response="ff", ` +
				`algorithm=SHA-256, qop=auth, nc=00000002, cnonce="c"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Header(); got != tt.want {
				t.Errorf("Header:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestHeaderName(t *testing.T) {
	if got := (sipauth.Authorization{}).HeaderName(); got != "Authorization" {
		t.Errorf("HeaderName = %q", got)
	}
	if got := (sipauth.Authorization{Proxy: true}).HeaderName(); got != "Proxy-Authorization" {
		t.Errorf("HeaderName(proxy) = %q", got)
	}
}

func TestProto(t *testing.T) {
	a := sipauth.Authorization{Username: "alice", Realm: "test.local", Nonce: "n1", URI: "sip:test.local;transport=udp",
		Response: "0123abcd", Algorithm: "MD5", Qop: "auth", NC: 3, Cnonce: "c1", Opaque: "op"}
	want := &pb.Authorization{Realm: "test.local", Scheme: "Digest", CNonce: "c1", Nonce: "n1", Algorithm: "MD5",
		Qop: "auth", Opaque: "op", Response: "0123abcd", Username: "alice", Uri: "sip:test.local;transport=udp",
		Method: "REGISTER", NonceCount: 3}
	if got := a.Proto("REGISTER"); !proto.Equal(got, want) {
		t.Errorf("Proto:\n got %v\nwant %v", got, want)
	}
	big := sipauth.Authorization{NC: math.MaxUint32}
	if got := big.Proto("REGISTER").GetNonceCount(); got != math.MaxInt32 {
		t.Errorf("Proto nonce_count = %d, want capped at MaxInt32", got)
	}
}

func TestApply(t *testing.T) {
	www := sipauth.Authorization{Username: "alice", Realm: "r", Nonce: "n", URI: "sip:r", Response: "aaaa", Qop: "auth", NC: 1, Cnonce: "c"}
	prx := www
	prx.Proxy, prx.Response = true, "bbbb"

	t.Run("401: the authorization field, no extension", func(t *testing.T) {
		keep := ext("Proxy-Authorization", "Digest earlier")
		orig := []*pb.Extension{ext("CSeq", "2 REGISTER"), ext("authorization", "Digest stale"), keep}
		msg := &pb.SIPMessage{Extensions: orig}
		www.Apply(msg, "REGISTER")
		if !proto.Equal(msg.GetAuthorization(), www.Proto("REGISTER")) {
			t.Errorf("Authorization = %v", msg.GetAuthorization())
		}
		wantExt := []*pb.Extension{ext("CSeq", "2 REGISTER"), keep}
		assertExtensions(t, msg.GetExtensions(), wantExt)
		if orig[1].GetName() != "authorization" || len(orig) != 3 {
			t.Error("Apply edited the caller's extensions slice in place")
		}
	})
	t.Run("407: a Proxy-Authorization extension, appended", func(t *testing.T) {
		field := &pb.Authorization{Scheme: "Digest", Response: "keep"}
		msg := &pb.SIPMessage{Authorization: field, Extensions: []*pb.Extension{ext("CSeq", "3 REGISTER")}}
		prx.Apply(msg, "REGISTER")
		assertExtensions(t, msg.GetExtensions(), []*pb.Extension{ext("CSeq", "3 REGISTER"), ext("Proxy-Authorization", prx.Header())})
		if msg.GetAuthorization() != field {
			t.Error("Apply(407) changed the authorization field")
		}
	})
	t.Run("407: replaces an earlier one in place, drops duplicates", func(t *testing.T) {
		msg := &pb.SIPMessage{Extensions: []*pb.Extension{
			ext("CSeq", "4 REGISTER"), ext("proxy-authorization", "Digest old1"), ext("User-Agent", "x"), ext("PROXY-AUTHORIZATION", "Digest old2"),
		}}
		prx.Apply(msg, "REGISTER")
		assertExtensions(t, msg.GetExtensions(), []*pb.Extension{
			ext("CSeq", "4 REGISTER"), ext("Proxy-Authorization", prx.Header()), ext("User-Agent", "x"),
		})
	})
	t.Run("nil message", func(_ *testing.T) {
		www.Apply(nil, "REGISTER")
		prx.Apply(nil, "REGISTER")
	})
}

func assertExtensions(t *testing.T, got, want []*pb.Extension) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("extensions: got %d %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("extension %d: got %v, want %v", i, got[i], want[i])
		}
	}
}
