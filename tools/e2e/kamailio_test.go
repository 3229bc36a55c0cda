package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	credentialsv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/credentials/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakeapi"
	"sipreg.dev/tools/kamailio"
)

// TestKamailio runs the registry, the real SIP requester and Kamailio (digest auth with
// qop=auth, min_expires 8, max_expires 3600), over UDP and over TCP, and reads the
// registrar's bindings with kamcmd.
func TestKamailio(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) { testKamailio(t, transport) })
	}
}

func kamTrunk(ref, user, pass, host string, port int, transport string) *trunksv2beta1.Trunk {
	return &trunksv2beta1.Trunk{
		Ref: ref, Name: ref, SendRegister: true,
		Uris:                []*trunksv2beta1.TrunkURI{{Host: host, Port: int32(port), Transport: transport, User: user, Enabled: true}},
		OutboundCredentials: &credentialsv2beta1.Credentials{Username: user, Password: pass},
	}
}

func testKamailio(t *testing.T, transport string) {
	kam := kamailio.Start(t, kamailio.Options{
		Users: map[string]kamailio.User{
			"alice":   {Password: "alicepw"},
			"bob":     {Password: "bobpw", Proxy: true},
			"mallory": {Password: "the-real-one"},
		},
		MinExpires: 8, MaxExpires: 3600,
	})
	host, portStr, _ := net.SplitHostPort(kam.Addr)
	port, _ := strconv.Atoi(portStr)

	sip := startProc(t, "siprequester", nil, "--listen", "127.0.0.1:0", "--sip-host", "127.0.0.1", "--transaction-timeout", "5s")
	reqAddr := sip.listenAddr()

	api := fakeapi.New(fakeapi.Options{})
	trunks := []*trunksv2beta1.Trunk{
		kamTrunk("alice", "alice", "alicepw", host, port, transport),
		kamTrunk("bob", "bob", "bobpw", host, port, transport),
		kamTrunk("mallory", "mallory", "wrong-pw", host, port, transport),
	}
	api.SetTrunks(trunks)
	apiAddr := serve(t, api.Serve, api.Stop)

	// The registry asks for 5 s: Kamailio answers 423 with Min-Expires 8, the registry
	// resends with 8 and keeps it; refreshes come every 4 s. Without Routr, the
	// "EdgePort" the REGISTER is routed through is the registrar itself.
	reg, _ := registry(t, registryConfigEdge(reqAddr, apiAddr, kam.Addr, "registerInterval: 1", "startupSpread: 0s",
		"httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0", "authMode: registry", "expires: 5",
		"requestTimeout: 10s", "gin: false"))
	ctl := controlClient(reg.control(), "")

	for _, user := range []string{"alice", "bob"} {
		r := waitState(t, ctl, user, 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)
		if r.GetGrantedExpiresSeconds() != 8 || r.GetLastResponseCode() != 200 {
			t.Errorf("%s: registered with %d %s, granted %d s: want 200 and the Min-Expires 8",
				user, r.GetLastResponseCode(), r.GetLastResponseType(), r.GetGrantedExpiresSeconds())
		}
		// The 423 was kept: every REGISTER asks for Min-Expires (8) from now on, not the
		// configured 5.
		ex, err := ctl.ExplainRegistration(context.Background(), connect.NewRequest(&registryv1.ExplainRegistrationRequest{TrunkRef: user}))
		if err != nil {
			t.Fatalf("ExplainRegistration %s: %v", user, err)
		}
		if got := ex.Msg.GetRequest().GetMessage().GetExpires().GetExpires(); got != 8 {
			t.Errorf("%s: the next REGISTER asks for Expires %d, want the Min-Expires 8 of the 423", user, got)
		}
		b := binding(t, kam, user)
		if b.Expires < 6 || b.Expires > 8 {
			t.Errorf("%s: binding expires in %d s, granted 8", user, b.Expires)
		}
		if !strings.Contains(strings.ToLower(b.Address), "transport="+strings.ToLower(transport)) {
			t.Errorf("%s: binding %s is not over %s", user, b.Address, transport)
		}
	}

	// Refresh: same Call-ID, higher CSeq, lifetime renewed.
	first := binding(t, kam, "alice")
	waitBinding(t, kam, "alice", "a refresh", func(b kamailio.Binding) bool { return b.CSeq > first.CSeq })
	again := binding(t, kam, "alice")
	if again.CallID != first.CallID {
		t.Errorf("refresh changed the Call-ID: %s -> %s", first.CallID, again.CallID)
	}

	// Wrong password: auth-failed after exactly one authenticated attempt.
	waitState(t, ctl, "mallory", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_AUTH_FAILED)
	if n := strings.Count(kam.Log(), "au=mallory"); n != 1 {
		t.Errorf("Kamailio saw %d authenticated attempts by mallory, want exactly 1", n)
	}
	if bs, err := kam.Bindings("mallory"); err != nil || len(bs) != 0 {
		t.Errorf("mallory has bindings %v (%v)", bs, err)
	}

	// A removed trunk's binding disappears.
	api.SetTrunks(trunks[:1])
	waitGone(t, kam, "bob")
	waitRemoved(t, ctl, "bob", 30*time.Second)
	if strings.Contains(reg.output(), "unregister failed") {
		t.Error("the registry did not take bob's unregister as done")
	}
	if bs, _ := kam.Bindings("alice"); len(bs) != 1 {
		t.Errorf("alice has %d bindings after bob's removal, want 1", len(bs))
	}
}

func binding(t *testing.T, kam *kamailio.Instance, aor string) kamailio.Binding {
	t.Helper()
	bs, err := kam.Bindings(aor)
	if err != nil {
		t.Fatalf("bindings of %s: %v", aor, err)
	}
	if len(bs) != 1 {
		t.Fatalf("%s has %d bindings, want 1: %+v", aor, len(bs), bs)
	}
	return bs[0]
}

// waitBinding polls the registrar (kamcmd) with a deadline until pred holds.
func waitBinding(t *testing.T, kam *kamailio.Instance, aor, what string, pred func(kamailio.Binding) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if bs, err := kam.Bindings(aor); err == nil && len(bs) == 1 && pred(bs[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s", aor, what)
		}
		<-tick.C
	}
}

func waitGone(t *testing.T, kam *kamailio.Instance, aor string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		bs, err := kam.Bindings(aor)
		if err == nil && len(bs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still bound: %v %v", aor, bs, err)
		}
		<-tick.C
	}
}
