package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"

	"sipreg.dev/tools/fakerequester"
)

const token = "e2e-token-7f3a"

// run runs a client binary from binDir and returns its stdout; it fails the test on a
// non-zero exit unless wantErr.
func run(t *testing.T, wantErr bool, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...)
	out, err := cmd.CombinedOutput()
	if (err != nil) != wantErr {
		t.Fatalf("%s %s: err %v (want error: %v)\n%s", bin, strings.Join(args, " "), err, wantErr, out)
	}
	return string(out)
}

// TestControlAPIWithRealClients drives the running registry's control API with grpcurl,
// buf curl and a Connect client, with token protection, and scrapes /metrics.
func TestControlAPIWithRealClients(t *testing.T) {
	script := fakerequester.Script{
		Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600},
		Trunks:  map[string]fakerequester.Behaviour{"carol": {Kind: fakerequester.KindForbidden}},
	}
	f := startFakes(t, script, []*trunksv2beta1.Trunk{
		trunk("alice", "sip.a.example", "alice", "alice-secret"),
		trunk("bob", "sip.b.example", "bob", "bob-secret"),
		trunk("carol", "sip.c.example", "carol", "carol-secret"),
	})
	reg, httpAddr := registry(t, registryConfig(f.reqAddr, f.apiAddr, "startupSpread: 2s", "httpAddr: 127.0.0.1:0",
		"controlAddr: 127.0.0.1:0"), "CONTROL_API_TOKEN="+token)
	start := reg.logEntry("start", 10*time.Second, "registry starting", nil)
	ctl := fmt.Sprint(start["control"])

	// Watch from the start: the stream sees alice go to registered.
	client := registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+ctl, connect.WithGRPC())
	auth := func(r interface{ Header() http.Header }) { r.Header().Set("Authorization", "Bearer "+token) }
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	wreq := connect.NewRequest(&registryv1.WatchRegistrationsRequest{TrunkRef: "alice"})
	auth(wreq)
	stream, err := client.WatchRegistrations(wctx, wreq)
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
		if stream.Msg().GetRegistration().GetState() == registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
			break
		}
	}
	if stream.Err() != nil {
		t.Fatalf("watch: %v", stream.Err())
	}
	wcancel()
	api := controlClient(ctl, token)
	waitState(t, api, "bob", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)
	waitState(t, api, "carol", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REJECTED)

	hdr := "authorization: Bearer " + token
	// grpcurl: reflection, every method, health.
	list := run(t, false, "grpcurl", "-plaintext", ctl, "list")
	for _, svc := range []string{"sipreg.registry.v1.RegistrationService", "grpc.health.v1.Health"} {
		if !strings.Contains(list, svc) {
			t.Errorf("grpcurl list: %s missing in %q", svc, list)
		}
	}
	if out := run(t, false, "grpcurl", "-plaintext", ctl, "grpc.health.v1.Health/Check"); !strings.Contains(out, "SERVING") {
		t.Errorf("health: %s", out)
	}
	out := run(t, false, "grpcurl", "-plaintext", "-H", hdr, "-d", `{"states":["REGISTRATION_STATE_REGISTERED"]}`, ctl,
		"sipreg.registry.v1.RegistrationService/ListRegistrations")
	var listed struct {
		Registrations []struct {
			TrunkRef string `json:"trunkRef"`
			State    string `json:"state"`
			Aor      string `json:"aor"`
			CallID   string `json:"callId"`
		} `json:"registrations"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("ListRegistrations output %q: %v", out, err)
	}
	if len(listed.Registrations) != 2 || listed.Registrations[0].TrunkRef != "alice" || listed.Registrations[1].TrunkRef != "bob" ||
		listed.Registrations[0].Aor != "sip:alice@sip.a.example" || listed.Registrations[0].CallID == "" {
		t.Errorf("registered list: %s", out)
	}
	out = run(t, false, "grpcurl", "-plaintext", "-H", hdr, "-d", `{"trunk_ref":"carol"}`, ctl, "sipreg.registry.v1.RegistrationService/GetRegistration")
	if !strings.Contains(out, "REGISTRATION_STATE_REJECTED") || !strings.Contains(out, `"lastResponseCode": 403`) {
		t.Errorf("GetRegistration carol: %s", out)
	}
	out = run(t, false, "grpcurl", "-plaintext", "-H", hdr, "-d", `{"trunk_ref":"alice"}`, ctl, "sipreg.registry.v1.RegistrationService/ForceRegister")
	if !strings.Contains(out, "REGISTRATION_STATE_REGISTERED") {
		t.Errorf("ForceRegister alice: %s", out)
	}
	out = run(t, false, "grpcurl", "-plaintext", "-H", hdr, "-d", `{"trunk_ref":"alice"}`, ctl, "sipreg.registry.v1.RegistrationService/ExplainRegistration")
	if !strings.Contains(out, "REDACTED") || strings.Contains(out, "alice-secret") || !strings.Contains(out, "X-Gateway-Auth") {
		t.Errorf("ExplainRegistration alice: %s", out)
	}
	out = run(t, true, "grpcurl", "-plaintext", "-H", hdr, "-d", `{"trunk_ref":"nobody"}`, ctl, "sipreg.registry.v1.RegistrationService/GetRegistration")
	if !strings.Contains(out, "NotFound") {
		t.Errorf("unknown trunk: %s", out)
	}
	out = run(t, true, "grpcurl", "-plaintext", "-H", hdr, "-d", `{}`, ctl, "sipreg.registry.v1.RegistrationService/GetRegistration")
	if !strings.Contains(out, "InvalidArgument") {
		t.Errorf("empty ref: %s", out)
	}
	// Token protection: without or with a wrong token, Unauthenticated.
	for _, h := range []string{"", "authorization: Bearer wrong"} {
		args := []string{"-plaintext"}
		if h != "" {
			args = append(args, "-H", h)
		}
		args = append(args, "-d", `{}`, ctl, "sipreg.registry.v1.RegistrationService/ListRegistrations")
		if out := run(t, true, "grpcurl", args...); !strings.Contains(out, "Unauthenticated") {
			t.Errorf("token %q: %s", h, out)
		}
	}
	// buf curl over gRPC and over the Connect protocol, with reflection: every method.
	if out := run(t, false, "buf", "curl", "--list-methods", "--http2-prior-knowledge", "http://"+ctl); !strings.Contains(out, "sipreg.registry.v1.RegistrationService/WatchRegistrations") {
		t.Errorf("buf curl --list-methods: %s", out)
	}
	for _, proto := range []string{"grpc", "connect"} {
		for _, c := range []struct{ method, data, want string }{
			{"GetRegistration", `{"trunk_ref":"bob"}`, "REGISTRATION_STATE_REGISTERED"},
			{"ListRegistrations", `{"states":["REGISTRATION_STATE_REJECTED"]}`, `"trunkRef": "carol"`},
			{"ForceRegister", `{"trunk_ref":"bob"}`, "REGISTRATION_STATE_REGISTERED"},
			{"ExplainRegistration", `{"trunk_ref":"bob"}`, "REDACTED"},
		} {
			out := run(t, false, "buf", "curl", "--protocol", proto, "--http2-prior-knowledge", "-H", hdr,
				"--data", c.data, "http://"+ctl+"/sipreg.registry.v1.RegistrationService/"+c.method)
			if !strings.Contains(out, c.want) || strings.Contains(out, "bob-secret") {
				t.Errorf("buf curl (%s) %s: %s", proto, c.method, out)
			}
		}
	}
	// A server stream through buf curl: the snapshot of bob arrives; the stream is cut
	// by --timeout (an error exit, expected).
	out = run(t, true, "buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "-H", hdr, "--timeout", "2s",
		"--data", `{"trunk_ref":"bob"}`, "http://"+ctl+"/sipreg.registry.v1.RegistrationService/WatchRegistrations")
	if !strings.Contains(out, `"trunkRef": "bob"`) {
		t.Errorf("buf curl WatchRegistrations: %s", out)
	}
	if out := run(t, true, "buf", "curl", "--protocol", "connect", "--data", `{}`,
		"http://"+ctl+"/sipreg.registry.v1.RegistrationService/ListRegistrations"); !strings.Contains(out, "unauthenticated") {
		t.Errorf("buf curl without token: %s", out)
	}

	// Metrics after the scenario: 2 registered, 1 rejected.
	body := metricsText(t, httpAddr)
	for _, want := range []string{
		`sipreg_registrations{state="registered"} 2`,
		`sipreg_registrations{state="rejected"} 1`,
		`sipreg_registrations{state="retrying"} 0`,
		`sipreg_register_requests_total{outcome="rejected"} 1`,
		`sipreg_cache_up 1`,
		`sipreg_api_trunks 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// ok: 2 first registrations + 1 forced by grpcurl + 2 forced by buf curl.
	if !strings.Contains(body, `sipreg_register_requests_total{outcome="ok"} 5`+"\n") {
		t.Errorf("/metrics ok count: %s", grep(body, "sipreg_register_requests_total"))
	}
	for _, secret := range []string{"alice-secret", "bob-secret", token} {
		if strings.Contains(body, secret) || strings.Contains(reg.output(), secret) {
			t.Errorf("secret %q in metrics or logs", secret)
		}
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
