package reconcile

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// digestFake answers the first REGISTER of a Call-ID with a challenge and the next
// with OK when it carries credentials from the right user; wrong users are challenged again.
func digestFake(proxy bool, goodUser string) func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
	return func(req *requesterv2beta1.SendMessageRequest, n int) (*sipmessagev2beta1.SIPMessage, error) {
		m := req.GetMessage()
		user := ""
		if a := m.GetAuthorization(); a != nil {
			user = a.GetUsername()
		}
		if v, ok := sipmsg.Header(m, "Proxy-Authorization"); ok {
			if i := strings.Index(v, `username="`); i >= 0 {
				user = strings.SplitN(v[i+10:], `"`, 2)[0]
			}
		}
		if user == goodUser {
			return ok(600), nil
		}
		if proxy {
			return response(sipmessagev2beta1.ResponseType_PROXY_AUTHENTICATION_REQUIRED, "Proxy Authentication Required",
				"Proxy-Authenticate", `Digest realm="test", nonce="n`+string(rune('a'+n))+`", qop="auth", algorithm=SHA-256`), nil
		}
		r := response(sipmessagev2beta1.ResponseType_UNAUTHORIZED, "Unauthorized")
		r.WwwAuthenticate = &sipmessagev2beta1.WWWAuthenticate{Scheme: "Digest", Realm: "test", Nonce: "nonce", Qop: "auth"}
		return r, nil
	}
}

func TestChallengeAnsweredInRegistryMode(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(map[bool]string{false: "401", true: "407"}[proxy], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw")}}
				req := &fakeRequester{answer: digestFake(proxy, "alice")}
				h := start(t, testSpec(), api, req, nil)
				rec := h.waitFor("registered", stateIs("t1", registration.StateRegistered)).Record
				h.stop()
				sent := req.requests()
				if len(sent) != 2 {
					t.Fatalf("%d REGISTERs, want 2 (challenge, answer)", len(sent))
				}
				if c0, c1 := cseqOf(t, sent[0]), cseqOf(t, sent[1]); c1 != c0+1 {
					t.Errorf("CSeq %d then %d: the resend must be +1", c0, c1)
				}
				if rec.CSeq != uint32(cseqOf(t, sent[1])) {
					t.Errorf("record CSeq %d, last sent %d", rec.CSeq, cseqOf(t, sent[1]))
				}
				if _, gw := sipmsg.Header(sent[0].GetMessage(), sipmsg.GatewayAuthHeader); gw {
					t.Error("X-Gateway-Auth sent in registry auth mode")
				}
			})
		})
	}
}

func TestWrongCredentialsEndInAuthFailedAfterOneAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "mallory", "bad")}}
		req := &fakeRequester{answer: digestFake(false, "alice")}
		h := start(t, testSpec(), api, req, nil)
		rec := h.waitFor("auth-failed", stateIs("t1", registration.StateAuthFailed)).Record
		h.stop()
		if n := len(req.requests()); n != 2 {
			t.Errorf("%d REGISTERs, want exactly 2 (one unauthenticated, one authenticated)", n)
		}
		if wait := time.Until(rec.NextActionAt); wait < 50*time.Minute {
			t.Errorf("auth-failed retried in %s, want the long auth-failed interval", wait)
		}
		if strings.Contains(rec.LastError, "bad") {
			t.Errorf("last error leaks the password: %q", rec.LastError)
		}
	})
}

func TestEdgePortModeSendsGatewayAuthAndTakesChallengeAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := testSpec()
		spec.AuthMode = config.AuthEdgePort
		api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw"), mkTrunk("t2", "sip.two.net", "bob", "")}}
		req := &fakeRequester{answer: digestFake(false, "nobody")}
		h := start(t, spec, api, req, nil)
		h.waitFor("t1 auth-failed", stateIs("t1", registration.StateAuthFailed))
		h.stop()
		for _, r := range req.requests() {
			v, ok := sipmsg.Header(r.GetMessage(), sipmsg.GatewayAuthHeader)
			if !ok || v == "" {
				t.Errorf("REGISTER without X-Gateway-Auth in edgeport mode")
			}
			if r.GetMessage().GetAuthorization() != nil {
				t.Errorf("registry answered a challenge in edgeport mode")
			}
		}
	})
}
