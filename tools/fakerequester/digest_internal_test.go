package fakerequester

import (
	"testing"

	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

func TestDigestResponseKnownAnswers(t *testing.T) {
	tests := []struct {
		name                                                         string
		algorithm, user, realm, password, method, uri, nonce, cnonce string
		want                                                         string
	}{
		{
			name:      "RFC 2617 3.5",
			algorithm: AlgorithmMD5, user: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life",
			method: "GET", uri: "/dir/index.html", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", cnonce: "0a4f113b",
			want: "6629fae49393a05397450978507c4ef1",
		},
		{
			name:      "RFC 7616 3.9.1 MD5",
			algorithm: AlgorithmMD5, user: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life",
			method: "GET", uri: "/dir/index.html", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
			cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			want:   "8ca523f5e9506fed4657c9700eebdbec",
		},
		{
			name:      "RFC 7616 3.9.1 SHA-256",
			algorithm: AlgorithmSHA256, user: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life",
			method: "GET", uri: "/dir/index.html", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
			cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			want:   "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
		},
	}
	for _, tt := range tests {
		got := digestResponse(tt.algorithm, tt.user, tt.realm, tt.password, tt.method, tt.uri, tt.nonce, 1, tt.cnonce, "auth")
		if got != tt.want {
			t.Errorf("%s: response %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	a := newAuthenticator()
	ch := a.challenge(&sipmessagev2beta1.SIPMessage{}, "r", AlgorithmMD5, false, false).GetWwwAuthenticate()
	right := digestCredentials{
		scheme: "Digest", username: "u", realm: "r", nonce: ch.GetNonce(), uri: "sip:h",
		algorithm: "MD5", cnonce: "c", opaque: ch.GetOpaque(), qop: "auth", nc: 1,
	}
	right.response = digestResponse(AlgorithmMD5, "u", "r", "p", "REGISTER", "sip:h", ch.GetNonce(), 1, "c", "auth")
	noAlgorithm := right
	noAlgorithm.algorithm, noAlgorithm.nc = "", 2
	noAlgorithm.response = digestResponse(AlgorithmMD5, "u", "r", "p", "REGISTER", "sip:h", ch.GetNonce(), 2, "c", "auth")

	change := func(f func(*digestCredentials)) digestCredentials { c := right; f(&c); return c }
	tests := []struct {
		name   string
		c      digestCredentials
		method string
		want   string
	}{
		{"basic scheme", change(func(c *digestCredentials) { c.scheme = "Basic" }), "REGISTER", "scheme is not Digest"},
		{"username", change(func(c *digestCredentials) { c.username = "v" }), "REGISTER", "unknown username"},
		{"realm", change(func(c *digestCredentials) { c.realm = "other" }), "REGISTER", "wrong realm"},
		{"opaque", change(func(c *digestCredentials) { c.opaque = "x" }), "REGISTER", "wrong opaque"},
		{"no qop", change(func(c *digestCredentials) { c.qop = "" }), "REGISTER", "qop is not auth"},
		{"no cnonce", change(func(c *digestCredentials) { c.cnonce = "" }), "REGISTER", "no cnonce"},
		{"no nc", change(func(c *digestCredentials) { c.nc = 0 }), "REGISTER", "no nonce count"},
		{"no uri", change(func(c *digestCredentials) { c.uri = "" }), "REGISTER", "no digest uri"},
		{"foreign nonce", change(func(c *digestCredentials) { c.nonce = "made-up" }), "REGISTER", "nonce not issued here"},
		{"algorithm", change(func(c *digestCredentials) { c.algorithm = "SHA-256" }), "REGISTER", "algorithm differs from the challenge's"},
		{"other method", right, "INVITE", "wrong response"},
		{"response", change(func(c *digestCredentials) { c.response = "00" }), "REGISTER", "wrong response"},
		{"right", right, "REGISTER", ""},
		{"replay", right, "REGISTER", "nonce count reused"},
		{"algorithm absent means MD5", noAlgorithm, "REGISTER", ""},
	}
	for _, tt := range tests {
		if got := a.verify(tt.c, tt.method, "u", "p", "r"); got != tt.want {
			t.Errorf("%s: verify() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestReasonPhrase(t *testing.T) {
	tests := map[sipmessagev2beta1.ResponseType]string{
		sipmessagev2beta1.ResponseType_OK:                            "OK",
		sipmessagev2beta1.ResponseType_INTERVAL_TOO_BRIEF:            "Interval Too Brief",
		sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED: "Proxy Authentication Required",
		sipmessagev2beta1.ResponseType_DECLINE:                       "Decline",
	}
	for rt, want := range tests {
		if got := reasonPhrase(rt); got != want {
			t.Errorf("reasonPhrase(%v) = %q, want %q", rt, got, want)
		}
	}
}
