package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files of the client's output")

// fixedNow is the "now" of every golden output.
var fixedNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(fixedNow.Add(d)) }

const (
	stRegistered = registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED
	stAuthFailed = registryv1.RegistrationState_REGISTRATION_STATE_AUTH_FAILED
	stRejected   = registryv1.RegistrationState_REGISTRATION_STATE_REJECTED
	stRetrying   = registryv1.RegistrationState_REGISTRATION_STATE_RETRYING
	stPending    = registryv1.RegistrationState_REGISTRATION_STATE_PENDING
)

// fixtures are the registrations of the golden outputs, deliberately out of order.
func fixtures() []*registryv1.Registration {
	return []*registryv1.Registration{
		{TrunkRef: "echo", TrunkName: "Echo", Aor: "sip:echo@sip.echo.example", Target: "sip.echo.example:5060",
			Transport: "UDP", EdgePort: "edge.test:5060", State: stRejected, LastResponseCode: 403,
			LastResponseType: "FORBIDDEN", LastReason: "Forbidden", NextAction: "retry", NextActionAt: at(29*time.Minute + 50*time.Second),
			FailureCount: 1, CallId: "c-echo", Cseq: 2, UpdatedAt: at(-10 * time.Second), Owner: "r2", FencingToken: 4},
		{TrunkRef: "acme", TrunkName: "Acme Carrier", Aor: "sip:acme@sip.acme.example", Target: "sip.acme.example:5060",
			Transport: "UDP", EdgePort: "edge.test:5060", State: stRegistered, LastResponseCode: 200, LastResponseType: "OK",
			LastReason: "OK", GrantedExpiresSeconds: 600, ExpiresAt: at(9*time.Minute + 12*time.Second), NextAction: "refresh",
			NextActionAt: at(4*time.Minute + 12*time.Second), CallId: "3f2a9c@sipreg", Cseq: 43, UpdatedAt: at(-4*time.Minute - 48*time.Second),
			RegisteredSince: at(-2*time.Hour - 3*time.Minute), Owner: "r1", FencingToken: 3},
		{TrunkRef: "charlie", Aor: "sip:charlie@pbx.charlie.example", Target: "pbx.charlie.example:5060", Transport: "TCP",
			EdgePort: "edge.test:5060", State: stRetrying, LastResponseCode: 503, LastResponseType: "SERVICE_UNAVAILABLE",
			LastReason: "Service Unavailable", NextAction: "retry", NextActionAt: at(42 * time.Second), FailureCount: 2,
			LastError: "503 Service Unavailable", CallId: "c-charlie", Cseq: 7, UpdatedAt: at(-18 * time.Second), Owner: "r1", FencingToken: 1},
		{TrunkRef: "bravo", TrunkName: "Bravo", Aor: "sip:bravo@sip.bravo.example", Target: "sip.bravo.example:5060",
			Transport: "UDP", EdgePort: "edge.test:5060", State: stAuthFailed, LastResponseCode: 401, LastResponseType: "UNAUTHORIZED",
			LastReason: "Unauthorized", NextAction: "retry", NextActionAt: at(29 * time.Minute), FailureCount: 3,
			LastError: "credentials refused: challenged again after answering", CallId: "c-bravo", Cseq: 12,
			ExpiresAt: at(-3 * time.Hour), UpdatedAt: at(-time.Minute), Owner: "r2", FencingToken: 2},
		{TrunkRef: "delta", Aor: "sip:delta@delta.example", Target: "delta.example:5060", Transport: "UDP",
			EdgePort: "edge.test:5060", State: stPending, NextAction: "register", NextActionAt: at(3 * time.Second),
			CallId: "c-delta", Cseq: 0, UpdatedAt: at(-2 * time.Second)},
	}
}

// explainFixture is acme's next REGISTER, with a secret the server failed to redact
// (the client must redact it all the same).
func explainFixture(leak string) *registryv1.ExplainRegistrationResponse {
	aor := func() *sipmessagev2beta1.Address {
		return &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{User: "acme", Host: "sip.acme.example", Port: -1}}
	}
	return &registryv1.ExplainRegistrationResponse{
		Registration: fixtures()[1],
		Reason:       "registered for 600 s; refreshed at 50-80 % of the lifetime; next REGISTER in 4m12s",
		Request: &requesterv2beta1.SendMessageRequest{
			Target: "sip.acme.example:5060", Method: processorv2beta1.Method_REGISTER, Transport: commonv2beta1.Transport_UDP,
			Message: &sipmessagev2beta1.SIPMessage{
				MessageType: &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{
					Host: "sip.acme.example", Port: 5060, TransportParam: "udp"}},
				Route: []*sipmessagev2beta1.Route{{Address: &sipmessagev2beta1.Address{Uri: &sipmessagev2beta1.SipURI{
					Host: "edge.test", Port: 5060, TransportParam: "udp", LrParam: true}}}},
				From:        &sipmessagev2beta1.From{Address: aor(), Tag: "a7f3"},
				To:          &sipmessagev2beta1.To{Address: aor()},
				CallId:      &sipmessagev2beta1.CallID{CallId: "3f2a9c@sipreg"},
				Expires:     &sipmessagev2beta1.Expires{Expires: 600},
				MaxForwards: &sipmessagev2beta1.MaxForwards{MaxForwards: 70},
				Authorization: &sipmessagev2beta1.Authorization{Scheme: "Digest", Username: "acme", Realm: "sip.acme.example",
					Nonce: "n0nce", Uri: "sip:sip.acme.example", Response: leak, Algorithm: "MD5", Qop: "auth", NonceCount: 1, CNonce: "c1"},
				Extensions: []*sipmessagev2beta1.Extension{
					{Name: "CSeq", Value: "44 REGISTER"}, {Name: "User-Agent", Value: "Routr Registry (sipreg)"},
					{Name: "Allow", Value: "INVITE"}, {Name: "Supported", Value: "path"}, {Name: "X-Gateway-Auth", Value: leak},
				},
			},
		},
	}
}

// cliRun is one run of a client subcommand: its output and exit code.
type cliRun struct {
	stdout, stderr string
	code           int
}

// runCLI runs a client subcommand with a fixed now, the given environment, and stdout
// a terminal or not.
func runCLI(t *testing.T, tty bool, env map[string]string, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	term := terminal{stdout: &out, stderr: &errb, tty: tty, now: func() time.Time { return fixedNow },
		getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runClient(ctx, args, term)
	return cliRun{out.String(), errb.String(), code}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func forceFixture() []*registryv1.ForceRegisterResult {
	regs := fixtures()
	return []*registryv1.ForceRegisterResult{
		{TrunkRef: "acme", Registration: regs[1]},
		{TrunkRef: "bravo", Registration: regs[3]},
		{TrunkRef: "echo", Registration: regs[0], Error: "not forced: its owner, replica r2, could not be reached: connection refused"},
	}
}

// TestCLIGolden checks the table outputs against testdata/*.golden.
func TestCLIGolden(t *testing.T) {
	f := &fakeControl{regs: fixtures(), explain: explainFixture("REDACTED"), force: forceFixture()}
	addr := serveFake(t, f)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"list", []string{"list"}, 0},
		{"list-wide", []string{"list", "-o", "wide"}, 0},
		{"list-state", []string{"list", "--state", "auth-failed,rejected"}, 0},
		{"get", []string{"get", "acme"}, 0},
		{"get-bravo", []string{"get", "bravo"}, 0},
		{"explain", []string{"explain", "acme"}, 0},
		{"force-all", []string{"force", "--all"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, false, nil, append(tc.args, "--addr", addr)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			golden(t, tc.name, r.stdout)
		})
	}
}

// TestCLIListFollowsPages: list reads every page, with the states asked for, and
// sorts by ref.
func TestCLIListFollowsPages(t *testing.T) {
	f := &fakeControl{regs: fixtures(), pageSize: 2}
	addr := serveFake(t, f)
	r := runCLI(t, false, nil, "list", "--addr", addr, "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got struct {
		Registrations []struct {
			TrunkRef  string `json:"trunkRef"`
			State     string `json:"state"`
			ExpiresAt string `json:"expiresAt"`
		} `json:"registrations"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	var refs []string
	for _, x := range got.Registrations {
		refs = append(refs, x.TrunkRef)
	}
	if strings.Join(refs, ",") != "acme,bravo,charlie,delta,echo" {
		t.Errorf("refs %v", refs)
	}
	if got.Registrations[0].State != "REGISTRATION_STATE_REGISTERED" || got.Registrations[0].ExpiresAt != "2026-11-23T10:09:12Z" {
		t.Errorf("acme in json: %+v (want the enum name and an RFC 3339 time)", got.Registrations[0])
	}
	if n := len(f.calls); n != 3 {
		t.Errorf("%d ListRegistrations calls for 5 entries in pages of 2, want 3", n)
	}

	r = runCLI(t, false, nil, "list", "--addr", addr, "--state", "registered", "--state", "REGISTRATION_STATE_RETRYING")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if want := []registryv1.RegistrationState{stRegistered, stRetrying}; !slices.Equal(f.lastList.GetStates(), want) {
		t.Errorf("states sent %v, want %v", f.lastList.GetStates(), want)
	}
	if !strings.Contains(r.stdout, "2 trunks: 1 registered, 1 retrying") || strings.Contains(r.stdout, "bravo") {
		t.Errorf("filtered list:\n%s", r.stdout)
	}
}

// TestCLIToken: the token comes from --token, else CONTROL_API_TOKEN, and is sent
// as a bearer token; a wrong one gets Unauthenticated (exit 1, one line).
func TestCLIToken(t *testing.T) {
	f := &fakeControl{regs: fixtures(), token: "s3cret-token"}
	addr := serveFake(t, f)
	env := map[string]string{"CONTROL_API_TOKEN": "s3cret-token"}
	if r := runCLI(t, false, env, "get", "acme", "--addr", addr); r.code != 0 {
		t.Errorf("token from the environment: exit %d: %s", r.code, r.stderr)
	}
	if r := runCLI(t, false, nil, "get", "acme", "--addr", addr, "--token", "s3cret-token"); r.code != 0 {
		t.Errorf("--token: exit %d: %s", r.code, r.stderr)
	}
	r := runCLI(t, false, env, "list", "--addr", addr, "--token", "wrong")
	if r.code != 1 || r.stderr != "registry: Unauthenticated: missing or invalid bearer token\n" {
		t.Errorf("wrong token: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cret-token") || strings.Contains(r.stdout+r.stderr, "wrong") {
		t.Errorf("a token was printed: %q %q", r.stdout, r.stderr)
	}
	if r := runCLI(t, false, nil, "list", "--addr", addr); r.code != 1 || !strings.Contains(r.stderr, "Unauthenticated") {
		t.Errorf("no token: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := f.tokens[:2]; got[0] != "Bearer s3cret-token" || got[1] != "Bearer s3cret-token" {
		t.Errorf("Authorization headers %q", got)
	}
}

// TestCLIProtocols: the same calls over the Connect protocol and over gRPC (h2c).
func TestCLIProtocols(t *testing.T) {
	f := &fakeControl{regs: fixtures(), force: forceFixture(), explain: explainFixture("REDACTED"),
		events: make(chan *registryv1.WatchRegistrationsResponse)}
	close(f.events)
	addr := serveFake(t, f)
	for _, p := range []string{"connect", "grpc"} {
		for _, args := range [][]string{{"list"}, {"get", "acme"}, {"explain", "acme"}, {"force", "acme"}, {"watch"}} {
			r := runCLI(t, false, nil, append(args, "--addr", "http://"+addr, "--protocol", p)...)
			if r.code != 0 || !strings.Contains(r.stdout, "acme") {
				t.Errorf("%s %v: exit %d, stdout %q, stderr %q", p, args, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// TestCLIExplainRedacts: a secret the server let through never reaches the output.
func TestCLIExplainRedacts(t *testing.T) {
	const secret = "YWNtZTpodW50ZXIy"
	addr := serveFake(t, &fakeControl{regs: fixtures(), explain: explainFixture(secret)})
	for _, o := range []string{"table", "json"} {
		r := runCLI(t, false, nil, "explain", "acme", "--addr", addr, "-o", o)
		if r.code != 0 || strings.Contains(r.stdout, secret) || !strings.Contains(r.stdout, "REDACTED") {
			t.Errorf("-o %s: exit %d, output:\n%s", o, r.code, r.stdout)
		}
	}
}
