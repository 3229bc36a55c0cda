package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
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

// fakeControl is a RegistrationService serving fixed registrations, a page of
// pageSize at a time, and recording what it was asked.
type fakeControl struct {
	registryv1connect.UnimplementedRegistrationServiceHandler
	regs     []*registryv1.Registration
	pageSize int
	token    string // required bearer token, when set
	explain  *registryv1.ExplainRegistrationResponse
	force    []*registryv1.ForceRegisterResult
	// events are sent by WatchRegistrations after the snapshot; the stream ends
	// with watchEnd when the channel is closed.
	events   chan *registryv1.WatchRegistrationsResponse
	watchEnd error
	block    bool // GetRegistration waits for the caller to give up

	mu       sync.Mutex
	calls    []string
	tokens   []string
	lastList *registryv1.ListRegistrationsRequest
	lastWat  *registryv1.WatchRegistrationsRequest
}

func (f *fakeControl) record(name string, h http.Header) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.tokens = append(f.tokens, h.Get("Authorization"))
	if f.token != "" && h.Get("Authorization") != "Bearer "+f.token {
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing or invalid bearer token"))
	}
	return nil
}

func (f *fakeControl) ListRegistrations(_ context.Context, req *connect.Request[registryv1.ListRegistrationsRequest]) (*connect.Response[registryv1.ListRegistrationsResponse], error) {
	if err := f.record("list", req.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.lastList = req.Msg
	f.mu.Unlock()
	var match []*registryv1.Registration
	for _, r := range f.regs {
		if r.GetTrunkRef() > req.Msg.GetPageToken() && (len(req.Msg.GetStates()) == 0 || slices.Contains(req.Msg.GetStates(), r.GetState())) {
			match = append(match, r)
		}
	}
	sortByRef(match)
	out := &registryv1.ListRegistrationsResponse{Registrations: match}
	if f.pageSize > 0 && len(match) > f.pageSize {
		out.Registrations = match[:f.pageSize]
		out.NextPageToken = match[f.pageSize-1].GetTrunkRef()
	}
	return connect.NewResponse(out), nil
}

func (f *fakeControl) GetRegistration(ctx context.Context, req *connect.Request[registryv1.GetRegistrationRequest]) (*connect.Response[registryv1.GetRegistrationResponse], error) {
	if err := f.record("get", req.Header()); err != nil {
		return nil, err
	}
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, r := range f.regs {
		if r.GetTrunkRef() == req.Msg.GetTrunkRef() {
			return connect.NewResponse(&registryv1.GetRegistrationResponse{Registration: r}), nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, errors.New(`trunk "`+req.Msg.GetTrunkRef()+`" not found`))
}

func (f *fakeControl) ExplainRegistration(_ context.Context, req *connect.Request[registryv1.ExplainRegistrationRequest]) (*connect.Response[registryv1.ExplainRegistrationResponse], error) {
	if err := f.record("explain", req.Header()); err != nil {
		return nil, err
	}
	return connect.NewResponse(f.explain), nil
}

func (f *fakeControl) ForceRegister(_ context.Context, req *connect.Request[registryv1.ForceRegisterRequest]) (*connect.Response[registryv1.ForceRegisterResponse], error) {
	if err := f.record("force", req.Header()); err != nil {
		return nil, err
	}
	if !req.Msg.GetAll() {
		for _, r := range f.force {
			if r.GetTrunkRef() == req.Msg.GetTrunkRef() {
				return connect.NewResponse(&registryv1.ForceRegisterResponse{Results: []*registryv1.ForceRegisterResult{r}}), nil
			}
		}
		return nil, connect.NewError(connect.CodeNotFound, errors.New("not found"))
	}
	return connect.NewResponse(&registryv1.ForceRegisterResponse{Results: f.force}), nil
}

func (f *fakeControl) WatchRegistrations(ctx context.Context, req *connect.Request[registryv1.WatchRegistrationsRequest], stream *connect.ServerStream[registryv1.WatchRegistrationsResponse]) error {
	if err := f.record("watch", req.Header()); err != nil {
		return err
	}
	f.mu.Lock()
	f.lastWat = req.Msg
	f.mu.Unlock()
	snapshot := slices.Clone(f.regs)
	sortByRef(snapshot)
	for _, r := range snapshot {
		if req.Msg.GetTrunkRef() != "" && r.GetTrunkRef() != req.Msg.GetTrunkRef() {
			continue
		}
		if err := stream.Send(&registryv1.WatchRegistrationsResponse{Registration: r}); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-f.events:
			if !ok {
				return f.watchEnd
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// serveFake serves f over HTTP/1.1 and cleartext HTTP/2 (as the registry does) and
// returns its host:port.
func serveFake(t *testing.T, f *fakeControl) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(registryv1connect.NewRegistrationServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
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

// TestCLIFailures: a failed call exits 1 with one line "registry: <code>: <message>".
func TestCLIFailures(t *testing.T) {
	addr := serveFake(t, &fakeControl{regs: fixtures()})
	blocked := serveFake(t, &fakeControl{regs: fixtures(), block: true})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name   string
		args   []string
		prefix string
	}{
		{"unknown trunk", []string{"get", "nobody", "--addr", addr}, `registry: NotFound: trunk "nobody" not found`},
		{"unreachable", []string{"list", "--addr", closed}, "registry: Unavailable: "},
		{"unreachable watch", []string{"watch", "--addr", closed}, "registry: Unavailable: "},
		{"unreachable grpc", []string{"list", "--addr", closed, "--protocol", "grpc"}, "registry: Unavailable: "},
		{"deadline", []string{"get", "acme", "--addr", blocked, "--timeout", "200ms"}, "registry: DeadlineExceeded: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, false, nil, tc.args...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, tc.prefix) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q: want 1 and one line starting %q", r.code, r.stdout, r.stderr, tc.prefix)
			}
		})
	}
}

// TestCLIUsage: command-line mistakes exit 2, help exits 0.
func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"list", "extra"},
		{"list", "--nope"},
		{"list", "-o", "yaml"},
		{"list", "--state", "happy"},
		{"list", "--protocol", "http3"},
		{"list", "--addr", "no-port"},
		{"list", "--timeout", "0s"},
		{"get"},
		{"get", "a", "b"},
		{"explain"},
		{"force"},
		{"force", "acme", "--all"},
		{"watch", "a", "b"},
		{"watch", "-o", "wide"},
	} {
		r := runCLI(t, false, nil, args...)
		if r.code != 2 || r.stderr == "" || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q: want 2 and a message", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, false, nil, "list", "-h"); r.code != 0 || !strings.Contains(r.stderr, "usage: registry list") {
		t.Errorf("list -h: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIFlagsAfterArguments: flags may follow the trunk ref; after "--" everything is
// an argument.
func TestCLIFlagsAfterArguments(t *testing.T) {
	addr := serveFake(t, &fakeControl{regs: fixtures()})
	r := runCLI(t, false, nil, "get", "acme", "-o", "json", "--addr", addr)
	if r.code != 0 || !strings.Contains(r.stdout, `"trunkRef": "acme"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, false, nil, "get", "--addr", addr, "--", "-o")
	if r.code != 1 || !strings.Contains(r.stderr, `trunk "-o" not found`) {
		t.Errorf("after --: exit %d, stderr %q", r.code, r.stderr)
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

// TestCLIWatchLines: piped, watch prints one line per message (or one JSON object per
// line), and a stream cut by the server is a failure.
func TestCLIWatchLines(t *testing.T) {
	f := &fakeControl{regs: fixtures()[1:3], events: make(chan *registryv1.WatchRegistrationsResponse, 2),
		watchEnd: connect.NewError(connect.CodeUnavailable, errors.New("registry is shutting down; watch again"))}
	changed := fixtures()[2]
	changed.State, changed.LastResponseCode, changed.LastReason, changed.FailureCount, changed.LastError = stRegistered, 200, "OK", 0, ""
	changed.ExpiresAt, changed.NextAction, changed.NextActionAt, changed.UpdatedAt = at(10*time.Minute), "refresh", at(6*time.Minute), at(0)
	f.events <- &registryv1.WatchRegistrationsResponse{Registration: changed}
	f.events <- &registryv1.WatchRegistrationsResponse{Registration: &registryv1.Registration{TrunkRef: "acme", UpdatedAt: at(time.Second)}, Removed: true}
	close(f.events)
	addr := serveFake(t, f)
	r := runCLI(t, false, nil, "watch", "--addr", addr, "--state", "registered")
	want := `2026-11-23T09:55:12Z acme registered code=200 reason=OK expires=2026-11-23T10:09:12Z next=refresh next_at=2026-11-23T10:04:12Z owner=r1
2026-11-23T09:59:42Z charlie retrying code=503 reason="Service Unavailable" next=retry next_at=2026-11-23T10:00:42Z failures=2 owner=r1 error="503 Service Unavailable"
2026-11-23T10:00:00Z charlie registered code=200 reason=OK expires=2026-11-23T10:10:00Z next=refresh next_at=2026-11-23T10:06:00Z owner=r1
2026-11-23T10:00:01Z acme removed
`
	if r.stdout != want {
		t.Errorf("lines:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.code != 1 || r.stderr != "registry: Unavailable: registry is shutting down; watch again\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := f.lastWat.GetStates(); !slices.Equal(got, []registryv1.RegistrationState{stRegistered}) {
		t.Errorf("piped watch sent states %v, want the filter", got)
	}

	f2 := &fakeControl{regs: fixtures(), events: make(chan *registryv1.WatchRegistrationsResponse)}
	close(f2.events)
	r = runCLI(t, false, nil, "watch", "bravo", "--addr", serveFake(t, f2), "-o", "json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var ev struct {
		Registration struct {
			TrunkRef  string `json:"trunkRef"`
			UpdatedAt string `json:"updatedAt"`
		} `json:"registration"`
	}
	if r.code != 0 || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil ||
		ev.Registration.TrunkRef != "bravo" || ev.Registration.UpdatedAt != "2026-11-23T09:59:00Z" {
		t.Errorf("watch -o json: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if f2.lastWat.GetTrunkRef() != "bravo" {
		t.Errorf("watch REF sent trunk_ref %q", f2.lastWat.GetTrunkRef())
	}
}

// TestCLIWatchLive: on a terminal, watch draws the table in place (cursor home, no
// scrolling), filters by state itself, in colour unless NO_COLOR is set.
func TestCLIWatchLive(t *testing.T) {
	for _, noColor := range []string{"", "1"} {
		f := &fakeControl{regs: fixtures(), events: make(chan *registryv1.WatchRegistrationsResponse, 1)}
		bravo := fixtures()[3]
		bravo.State = stRegistered
		f.events <- &registryv1.WatchRegistrationsResponse{Registration: bravo}
		close(f.events)
		r := runCLI(t, true, map[string]string{"NO_COLOR": noColor}, "watch", "--addr", serveFake(t, f), "--state", "registered")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if len(f.lastWat.GetStates()) != 0 {
			t.Errorf("live watch sent states %v: it filters by itself", f.lastWat.GetStates())
		}
		if !strings.HasPrefix(r.stdout, ansiClearAll+ansiHome) || !strings.HasSuffix(r.stdout, ansiClearBelow) {
			t.Errorf("not drawn in place: %q", r.stdout)
		}
		frames := strings.Split(r.stdout, ansiHome)
		last := frames[len(frames)-1]
		plain := stripANSI(last)
		if !strings.Contains(plain, "2 trunks: 2 registered") || !strings.Contains(plain, "bravo") || strings.Contains(plain, "echo") {
			t.Errorf("last frame:\n%s", plain)
		}
		if colored := strings.Contains(last, "\x1b["+sgrGreen+"m"); colored != (noColor == "") {
			t.Errorf("NO_COLOR=%q: colour %v", noColor, colored)
		}
	}
}

// stripANSI drops the escape sequences of a terminal frame.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < '@' || s[j] > '~') {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestCLIColourOnlyOnTerminal: no escape codes when stdout is not a terminal.
func TestCLIColourOnlyOnTerminal(t *testing.T) {
	addr := serveFake(t, &fakeControl{regs: fixtures()})
	if r := runCLI(t, false, nil, "list", "--addr", addr); strings.Contains(r.stdout, "\x1b") {
		t.Errorf("escape codes in piped output: %q", r.stdout)
	}
	r := runCLI(t, true, nil, "list", "--addr", addr)
	if !strings.Contains(r.stdout, "\x1b["+sgrRed+"mauth-failed\x1b[0m") {
		t.Errorf("no colour on a terminal: %q", r.stdout)
	}
	// Colour does not shift the columns.
	plain := runCLI(t, false, nil, "list", "--addr", addr).stdout
	if stripANSI(r.stdout) != plain {
		t.Errorf("coloured table differs from the plain one:\n%s\n%s", stripANSI(r.stdout), plain)
	}
	if r := runCLI(t, true, map[string]string{"NO_COLOR": "1"}, "list", "--addr", addr); strings.Contains(r.stdout, "\x1b") {
		t.Errorf("escape codes with NO_COLOR: %q", r.stdout)
	}
}

func TestRelativeTimes(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                "now",
		400 * time.Millisecond:           "now",
		3 * time.Second:                  "in 3s",
		-3 * time.Second:                 "3s ago",
		4*time.Minute + 12*time.Second:   "in 4m12s",
		2*time.Hour + 3*time.Minute:      "in 2h3m",
		-(50*time.Hour + 59*time.Minute): "2d2h ago",
		-29 * time.Minute:                "29m ago",
		3 * time.Hour:                    "in 3h",
	} {
		if got := relative(at(d), fixedNow); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
	if relative(nil, fixedNow) != "-" {
		t.Error("no time should show -")
	}
}
