package e2e

import (
	"strings"
	"testing"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakerequester"
)

// TestOutcomes runs one registry against a fake Requester that answers each trunk with
// a different behaviour, and checks each trunk's REGISTERs and final state.
func TestOutcomes(t *testing.T) {
	type check func(t *testing.T, reqs []fakerequester.Recorded)
	const (
		registered = registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED
		authFailed = registryv1.RegistrationState_REGISTRATION_STATE_AUTH_FAILED
		rejected   = registryv1.RegistrationState_REGISTRATION_STATE_REJECTED
	)
	cases := []struct {
		user  string
		pass  string
		b     fakerequester.Behaviour
		state registryv1.RegistrationState // the state that ends the case: registered or a failed state
		n     int                          // REGISTERs until then (0: do not check)
		check check
	}{
		{user: "md5", pass: "pw-md5", b: fakerequester.Behaviour{Kind: fakerequester.KindChallenge, Algorithm: "MD5", Username: "md5", Password: "pw-md5"},
			state: registered, n: 2, check: func(t *testing.T, r []fakerequester.Recorded) {
				if r[1].Req.GetMessage().GetAuthorization().GetResponse() == "" {
					t.Error("second REGISTER has no Authorization")
				}
			}},
		{user: "sha", pass: "pw-sha", b: fakerequester.Behaviour{Kind: fakerequester.KindChallenge, Algorithm: "SHA-256", Proxy: true, Username: "sha", Password: "pw-sha"},
			state: registered, n: 2, check: func(t *testing.T, r []fakerequester.Recorded) {
				if v := ext(r[1].Req.GetMessage(), "Proxy-Authorization"); len(v) != 1 || !strings.Contains(v[0], "algorithm=SHA-256") {
					t.Errorf("Proxy-Authorization %v", v)
				}
			}},
		{user: "stale", pass: "pw-stale", b: fakerequester.Behaviour{Kind: fakerequester.KindChallenge, Algorithm: "MD5", Username: "stale", Password: "pw-stale", StaleOnce: true},
			state: registered, n: 3},
		{user: "wrongpw", pass: "not-it", b: fakerequester.Behaviour{Kind: fakerequester.KindChallenge, Algorithm: "MD5", Username: "wrongpw", Password: "right"},
			state: authFailed, n: 2},
		{user: "brief", b: fakerequester.Behaviour{Kind: fakerequester.KindIntervalTooBrief, MinExpires: 1200, Expires: 3600},
			state: registered, n: 2, check: func(t *testing.T, r []fakerequester.Recorded) {
				if a, b := r[0].Req.GetMessage().GetExpires().GetExpires(), r[1].Req.GetMessage().GetExpires().GetExpires(); a != 600 || b != 1200 {
					t.Errorf("Expires %d then %d, want 600 then 1200", a, b)
				}
			}},
		{user: "nogin", b: fakerequester.Behaviour{Kind: fakerequester.KindBadExtension},
			state: registered, n: 2, check: func(t *testing.T, r []fakerequester.Recorded) {
				if len(ext(r[1].Req.GetMessage(), "Require")) != 0 {
					t.Error("resend after 420 still requires gin")
				}
			}},
		{user: "forbidden", b: fakerequester.Behaviour{Kind: fakerequester.KindForbidden}, state: rejected, n: 1},
		{user: "notfound", b: fakerequester.Behaviour{Kind: fakerequester.KindNotFound}, state: rejected, n: 1},
		{user: "busy", b: fakerequester.Behaviour{Kind: fakerequester.KindServerError, RetryAfter: 1, FailN: 2},
			state: registered, n: 3, check: func(t *testing.T, r []fakerequester.Recorded) {
				if gap := r[1].At.Sub(r[0].At); gap < 900*time.Millisecond {
					t.Errorf("retried %s after a Retry-After of 1 s", gap)
				}
			}},
		{user: "timeout", b: fakerequester.Behaviour{Kind: fakerequester.KindRequestTimeout, FailN: 1}, state: registered, n: 2},
		{user: "hang", b: fakerequester.Behaviour{Kind: fakerequester.KindHang, FailN: 1}, state: registered, n: 2},
		{user: "down", b: fakerequester.Behaviour{Kind: fakerequester.KindUnavailable, FailN: 1}, state: registered, n: 2},
	}
	script := fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK}, Trunks: map[string]fakerequester.Behaviour{}}
	var trunks []*trunksv2beta1.Trunk
	for _, c := range cases {
		script.Trunks[c.user] = c.b
		trunks = append(trunks, trunk(c.user, "sip."+c.user+".example", c.user, c.pass))
	}
	f := startFakes(t, script, trunks)
	reg, _ := registry(t, registryConfig(f.reqAddr, f.apiAddr, "registerInterval: 5", "startupSpread: 0s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "authMode: registry", "requestTimeout: 2s",
		"backoffBase: 1s", "backoffMax: 2s"))
	api := controlClient(reg.control(), "")
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			waitState(t, api, c.user, 30*time.Second, c.state)
			reqs := forKey(f.req.Requests(), c.user)
			if c.n > 0 && len(reqs) != c.n {
				t.Fatalf("%d REGISTERs before %s, want %d", len(reqs), c.state, c.n)
			}
			for i := 1; i < len(reqs); i++ {
				if cseq(t, reqs[i].Req.GetMessage()) != cseq(t, reqs[i-1].Req.GetMessage())+1 {
					t.Errorf("CSeq does not go up by one across the resends")
				}
			}
			if c.check != nil {
				c.check(t, reqs)
			}
		})
	}
	if strings.Contains(reg.output(), "pw-") || strings.Contains(reg.output(), "not-it") {
		t.Error("a password reached the registry's logs")
	}
	// The refused trunks are not retried in a loop.
	for _, u := range []string{"wrongpw", "forbidden", "notfound"} {
		if n := len(forKey(f.req.Requests(), u)); n > 2 {
			t.Errorf("%s: %d REGISTERs: a refused trunk was retried at once", u, n)
		}
	}
}
