//lint:file-ignore SA1019 the reflection test calls the deprecated v1alpha service on purpose: grpcurl and older clients still use it.

package controlapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/controlapi"
	"sipreg.dev/services/registry/internal/metrics"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

const (
	apiToken   = "tok-Vn4-the-right-one"
	wrongToken = "tok-Vn4-the-wrong-one"
	// forceTimeout is short so the t-slow case ends quickly; every other Force returns at once.
	forceTimeout = 300 * time.Millisecond
	// waitLimit only bounds a test that would otherwise hang; nothing waits for it to pass.
	waitLimit = 10 * time.Second
)

// env is one server from controlapi.NewServer on 127.0.0.1:0 over the fake engine, with
// the registry's metrics as its Observer.
type env struct {
	fx      *fixture
	addr    string
	baseURL string
	seen    *replies
	logs    *lockedBuffer
	met     *metrics.Metrics
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newEnv starts a server; each tweak may change its options or the fake engine first.
func newEnv(t *testing.T, tweaks ...func(*controlapi.Options, *fixture)) *env {
	t.Helper()
	e := &env{fx: newFixture(), seen: &replies{}, logs: &lockedBuffer{}, met: metrics.New(nil)}
	opts := controlapi.Options{
		Token:        apiToken,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ForceTimeout: forceTimeout,
		Observer:     e.met,
	}
	for _, tweak := range tweaks {
		tweak(&opts, e.fx)
	}
	h := controlapi.NewHandler(e.fx.engine, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.baseURL = "http://" + e.addr
	srv := controlapi.NewServer(e.addr, h)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// subscription returns the next subscription the handler made on the fake engine.
func (e *env) subscription(t *testing.T) *subscription {
	t.Helper()
	select {
	case s := <-e.fx.subs:
		return s
	case <-time.After(waitLimit):
		t.Fatal("no subscription")
		return nil
	}
}

type apiCase struct {
	name string
	run  func(t *testing.T, e *env, c rpc, dial func(*testing.T, string) rpc)
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	for _, tr := range transports(e.baseURL, e.addr, e.seen) {
		t.Run(tr.name, func(t *testing.T) {
			c := tr.dial(t, apiToken)
			for _, tc := range apiCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, e, c, tr.dial) })
			}
		})
	}
	t.Run("health", func(t *testing.T) { testHealth(t, e) })
	t.Run("reflection", func(t *testing.T) { testReflection(t, e) })

	// No planted secret, and no token, in any reply, error or log line.
	if len(e.seen.msgs) == 0 {
		t.Fatal("no replies recorded")
	}
	for _, m := range e.seen.msgs {
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(js, []byte(s)) || bytes.Contains(bin, []byte(s)) {
				t.Errorf("secret %q leaked in a %T reply: %s", s, m, js)
			}
		}
	}
	logs := e.logs.String()
	for _, s := range append(slices.Clone(secrets), apiToken, wrongToken) {
		for _, msg := range e.seen.errs {
			if strings.Contains(msg, s) {
				t.Errorf("secret %q leaked in an error: %s", s, msg)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("secret %q leaked in the log", s)
		}
	}
	if !strings.Contains(logs, "missing or invalid bearer token") {
		t.Error("refused calls were not logged")
	}
}

func wantCode(t *testing.T, err error, want connect.Code, msgContains string) {
	t.Helper()
	if got := codeOf(err); got != want {
		t.Fatalf("code = %v (%v), want %v", got, err, want)
	}
	if msgContains != "" && !strings.Contains(messageOf(err), msgContains) {
		t.Fatalf("message %q does not contain %q", messageOf(err), msgContains)
	}
}

func refsOf(regs []*registryv1.Registration) []string {
	out := make([]string, 0, len(regs))
	for _, r := range regs {
		out = append(out, r.GetTrunkRef())
	}
	return out
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// wantA is the fixture's t-a as the API must render it.
var wantA = &registryv1.Registration{
	TrunkRef: "t-a", TrunkName: "Alpha", Aor: "sip:alice@alpha.example", Target: "alpha.example:5060",
	Transport: "udp", EdgePort: "edgeport:5060",
	State:            registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED,
	LastResponseCode: 200, LastResponseType: "OK", LastReason: "OK",
	GrantedExpiresSeconds: 600, ExpiresAt: timestamppb.New(t0.Add(10 * time.Minute)),
	NextAction: "refresh", NextActionAt: timestamppb.New(t0.Add(6 * time.Minute)),
	CallId: "call-a@sipreg", Cseq: 7, UpdatedAt: timestamppb.New(t0),
	RegisteredSince: timestamppb.New(t0.Add(-time.Hour)), Owner: "replica-1", FencingToken: 42,
}

const (
	stRegistered = registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED
	stRetrying   = registryv1.RegistrationState_REGISTRATION_STATE_RETRYING
	stAuthFailed = registryv1.RegistrationState_REGISTRATION_STATE_AUTH_FAILED
	stRejected   = registryv1.RegistrationState_REGISTRATION_STATE_REJECTED
	stUnspec     = registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED
)

var apiCases = []apiCase{
	// ListRegistrations
	{"list/all", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := refsOf(res.GetRegistrations()), e.fx.sortedRefs(); !slices.Equal(got, want) {
			t.Fatalf("refs = %v, want %v", got, want)
		}
		if res.GetNextPageToken() != "" {
			t.Fatalf("next_page_token = %q on the only page", res.GetNextPageToken())
		}
		if got := res.GetRegistrations()[0]; !proto.Equal(got, wantA) {
			t.Fatalf("t-a rendered as\n%v\nwant\n%v", got, wantA)
		}
	}},
	{"list/filter", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{States: []registryv1.RegistrationState{stRegistered, stAuthFailed}})
		if err != nil {
			t.Fatal(err)
		}
		want := e.fx.sortedRefs(registration.StateRegistered, registration.StateAuthFailed)
		if got := refsOf(res.GetRegistrations()); !slices.Equal(got, want) || len(want) != 3 {
			t.Fatalf("refs = %v, want %v", got, want)
		}
	}},
	{"list/paging", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		var pages [][]string
		tok := ""
		for range 10 {
			res, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{PageSize: 2, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, refsOf(res.GetRegistrations()))
			if tok = res.GetNextPageToken(); tok == "" {
				break
			}
		}
		want := [][]string{{"t-a", "t-b"}, {"t-c", "t-d"}, {"t-e"}}
		if !slices.EqualFunc(pages, want, slices.Equal) {
			t.Fatalf("pages = %v, want %v", pages, want)
		}
	}},
	{"list/paging with filter", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		req := &registryv1.ListRegistrationsRequest{PageSize: 1, States: []registryv1.RegistrationState{stRegistered}}
		res, err := c.List(ctxFor(t), req)
		if err != nil {
			t.Fatal(err)
		}
		req.PageToken = res.GetNextPageToken()
		res2, err := c.List(ctxFor(t), req)
		if err != nil {
			t.Fatal(err)
		}
		got := [][]string{refsOf(res.GetRegistrations()), refsOf(res2.GetRegistrations())}
		if !slices.EqualFunc(got, [][]string{{"t-a"}, {"t-d"}}, slices.Equal) || res2.GetNextPageToken() != "" {
			t.Fatalf("pages = %v (last token %q)", got, res2.GetNextPageToken())
		}
	}},
	{"list/page_size above max is capped", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{PageSize: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetRegistrations()) != 5 {
			t.Fatalf("got %d registrations", len(res.GetRegistrations()))
		}
	}},
	{"list/negative page_size", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{PageSize: -1})
		wantCode(t, err, connect.CodeInvalidArgument, "page_size")
	}},
	{"list/bad page_token", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		for _, tok := range []string{
			"%%%not-base64",
			base64.RawURLEncoding.EncodeToString([]byte("v9:t-a")), // unknown version
			base64.RawURLEncoding.EncodeToString([]byte("v1:")),    // no ref
			base64.StdEncoding.EncodeToString([]byte("v1:t-ab")),   // padded, not base64url
		} {
			_, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{PageToken: tok})
			wantCode(t, err, connect.CodeInvalidArgument, "bad page_token")
		}
	}},
	{"list/unspecified state in filter", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{States: []registryv1.RegistrationState{stRegistered, stUnspec}})
		wantCode(t, err, connect.CodeInvalidArgument, "states[1]")
		_, err = c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{States: []registryv1.RegistrationState{42}})
		wantCode(t, err, connect.CodeInvalidArgument, "unknown state 42")
	}},

	// GetRegistration
	{"get/ok", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.Get(ctxFor(t), &registryv1.GetRegistrationRequest{TrunkRef: "t-b"})
		if err != nil {
			t.Fatal(err)
		}
		r := res.GetRegistration()
		if r.GetState() != stRetrying || r.GetFailureCount() != 2 || r.GetLastError() != "requester unavailable" ||
			r.GetLastResponseCode() != 503 || r.GetCseq() != 3 || r.GetNextAction() != "retry" {
			t.Fatalf("t-b = %v", r)
		}
		if r.GetExpiresAt() != nil || r.GetRegisteredSince() != nil {
			t.Fatalf("zero times must be absent: %v", r)
		}
		res, err = c.Get(ctxFor(t), &registryv1.GetRegistrationRequest{TrunkRef: "t-a"})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(res.GetRegistration(), wantA) {
			t.Fatalf("t-a = %v", res.GetRegistration())
		}
	}},
	{"get/empty ref", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.Get(ctxFor(t), &registryv1.GetRegistrationRequest{})
		wantCode(t, err, connect.CodeInvalidArgument, "trunk_ref")
	}},
	{"get/unknown", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.Get(ctxFor(t), &registryv1.GetRegistrationRequest{TrunkRef: "t-nope"})
		wantCode(t, err, connect.CodeNotFound, `"t-nope"`)
	}},

	// ForceRegister
	{"force/one", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{TrunkRef: "t-a"})
		if err != nil {
			t.Fatal(err)
		}
		rs := res.GetResults()
		if len(rs) != 1 || rs[0].GetTrunkRef() != "t-a" || rs[0].GetError() != "" || rs[0].GetRegistration().GetCseq() != 8 {
			t.Fatalf("results = %v", rs)
		}
	}},
	{"force/all", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{All: true})
		if err != nil {
			t.Fatal(err)
		}
		rs := res.GetResults()
		if len(rs) != 3 {
			t.Fatalf("results = %v", rs)
		}
		if rs[0].GetTrunkRef() != "t-a" || rs[0].GetError() != "" || rs[0].GetRegistration().GetCseq() != 8 {
			t.Errorf("t-a result = %v", rs[0])
		}
		if rs[1].GetTrunkRef() != "t-broken" || !strings.Contains(rs[1].GetError(), "no usable URI") ||
			rs[1].GetRegistration().GetState() != stRejected {
			t.Errorf("t-broken result = %v", rs[1])
		}
		if rs[2].GetTrunkRef() != "t-d" || rs[2].GetError() != "" || rs[2].GetRegistration().GetCseq() != 2 {
			t.Errorf("t-d result = %v", rs[2])
		}
	}},
	{"force/both or neither", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{TrunkRef: "t-a", All: true})
		wantCode(t, err, connect.CodeInvalidArgument, "not both")
		_, err = c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{})
		wantCode(t, err, connect.CodeInvalidArgument, "trunk_ref or all")
	}},
	{"force/unknown", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{TrunkRef: "t-nope"})
		wantCode(t, err, connect.CodeNotFound, `"t-nope"`)
	}},
	{"force/engine errors", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		for ref, want := range map[string]connect.Code{
			"t-slow":   connect.CodeDeadlineExceeded, // no outcome within ForceTimeout
			"t-stop":   connect.CodeUnavailable,
			"t-broken": connect.CodeInternal,
		} {
			_, err := c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{TrunkRef: ref})
			wantCode(t, err, want, "")
		}
	}},

	// ExplainRegistration
	{"explain/ok and redacted", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		res, err := c.Explain(ctxFor(t), &registryv1.ExplainRegistrationRequest{TrunkRef: "t-a"})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(res.GetRegistration(), wantA) || !strings.Contains(res.GetReason(), "next REGISTER") {
			t.Fatalf("explain = %v", res)
		}
		req := res.GetRequest()
		if req.GetTarget() != "alpha.example:5060" || req.GetMessage().GetAuthorization().GetResponse() != "REDACTED" ||
			req.GetMessage().GetAuthorization().GetUsername() != "alice" {
			t.Fatalf("request = %v", req)
		}
		exts := map[string]string{}
		for _, x := range req.GetMessage().GetExtensions() {
			exts[x.GetName()] = x.GetValue()
		}
		if exts["X-Gateway-Auth"] != "REDACTED" || exts["Proxy-Authorization"] != "REDACTED" ||
			!strings.Contains(exts["Authorization"], `response="REDACTED"`) || exts["X-Password-Note"] != "not a credential header" {
			t.Fatalf("extensions = %v", exts)
		}
		js, _ := protojson.Marshal(res)
		for _, s := range secrets {
			if strings.Contains(string(js), s) {
				t.Fatalf("secret %q in %s", s, js)
			}
		}
		// The redaction works on a copy: the engine's message is left alone.
		e.fx.mu.Lock()
		orig := e.fx.lastExplained
		e.fx.mu.Unlock()
		if orig.GetMessage().GetAuthorization().GetResponse() != secretDigest {
			t.Fatal("the engine's request was changed")
		}
	}},
	{"explain/empty ref", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.Explain(ctxFor(t), &registryv1.ExplainRegistrationRequest{})
		wantCode(t, err, connect.CodeInvalidArgument, "trunk_ref")
	}},
	{"explain/unknown", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		_, err := c.Explain(ctxFor(t), &registryv1.ExplainRegistrationRequest{TrunkRef: "t-nope"})
		wantCode(t, err, connect.CodeNotFound, `"t-nope"`)
	}},

	// WatchRegistrations
	{"watch/snapshot, changes, removal, client leaves", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		defer cancel()
		s, err := c.Watch(ctx, &registryv1.WatchRegistrationsRequest{
			States: []registryv1.RegistrationState{stRegistered, stRetrying},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := recvN(t, s, 3)
		if refs := watchRefs(got); !slices.Equal(refs, []string{"t-a", "t-b", "t-d"}) {
			t.Fatalf("snapshot = %v", refs)
		}
		if !proto.Equal(got[0].GetRegistration(), wantA) {
			t.Fatalf("snapshot t-a = %v", got[0])
		}
		sub := e.subscription(t)
		sub.Push(watch.Event{Record: registration.Record{TrunkRef: "t-c", State: registration.StateAuthFailed}})
		sub.Push(watch.Event{Record: registration.Record{TrunkRef: "t-e", State: registration.StateRegistered, CSeq: 1}})
		sub.Push(watch.Event{Record: registration.Record{TrunkRef: "t-b", State: registration.StateUnregistered}, Removed: true})
		got = recvN(t, s, 2)
		if r := got[0]; r.GetRemoved() || r.GetRegistration().GetTrunkRef() != "t-e" || r.GetRegistration().GetState() != stRegistered {
			t.Fatalf("change = %v", r)
		}
		if r := got[1]; !r.GetRemoved() || r.GetRegistration().GetTrunkRef() != "t-b" {
			t.Fatalf("removal = %v", r)
		}
		cancel()
		select {
		case <-sub.gone:
		case <-time.After(waitLimit):
			t.Fatal("the handler did not unsubscribe after the client left")
		}
	}},
	{"watch/one trunk", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		defer cancel()
		s, err := c.Watch(ctx, &registryv1.WatchRegistrationsRequest{TrunkRef: "t-a"})
		if err != nil {
			t.Fatal(err)
		}
		if got := watchRefs(recvN(t, s, 1)); !slices.Equal(got, []string{"t-a"}) {
			t.Fatalf("snapshot = %v", got)
		}
		sub := e.subscription(t)
		sub.Push(watch.Event{Record: registration.Record{TrunkRef: "t-d", State: registration.StateRetrying}})
		sub.Push(watch.Event{Record: registration.Record{TrunkRef: "t-a", State: registration.StateRetrying, Failures: 1}})
		if r := recvN(t, s, 1)[0]; r.GetRegistration().GetTrunkRef() != "t-a" || r.GetRegistration().GetState() != stRetrying {
			t.Fatalf("change = %v", r)
		}
	}},
	{"watch/registry stops", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		s, err := c.Watch(ctxFor(t), &registryv1.WatchRegistrationsRequest{TrunkRef: "t-e"})
		if err != nil {
			t.Fatal(err)
		}
		recvN(t, s, 1)
		e.subscription(t).End(reconcile.ErrStopping)
		_, err = s.Recv()
		wantCode(t, err, connect.CodeUnavailable, "shutting down")
	}},
	{"watch/deadline ends the stream with DEADLINE_EXCEEDED, not a clean end", func(t *testing.T, e *env, c rpc, _ func(*testing.T, string) rpc) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		s, err := c.Watch(ctx, &registryv1.WatchRegistrationsRequest{TrunkRef: "t-a"})
		if err != nil {
			t.Fatal(err)
		}
		recvN(t, s, 1)
		sub := e.subscription(t)
		_, err = s.Recv()
		wantCode(t, err, connect.CodeDeadlineExceeded, "")
		select {
		case <-sub.gone:
		case <-time.After(waitLimit):
			t.Fatal("the handler did not unsubscribe after the deadline")
		}
	}},
	{"watch/bad state", func(t *testing.T, _ *env, c rpc, _ func(*testing.T, string) rpc) {
		s, err := c.Watch(ctxFor(t), &registryv1.WatchRegistrationsRequest{States: []registryv1.RegistrationState{stUnspec}})
		if err == nil {
			_, err = s.Recv()
		}
		wantCode(t, err, connect.CodeInvalidArgument, "states[0]")
	}},

	// Authentication
	{"auth/missing or wrong token", func(t *testing.T, _ *env, _ rpc, dial func(*testing.T, string) rpc) {
		for _, tok := range []string{"", wrongToken} {
			c := dial(t, tok)
			_, err := c.List(ctxFor(t), &registryv1.ListRegistrationsRequest{})
			wantCode(t, err, connect.CodeUnauthenticated, "bearer token")
			_, err = c.Force(ctxFor(t), &registryv1.ForceRegisterRequest{All: true})
			wantCode(t, err, connect.CodeUnauthenticated, "")
			s, err := c.Watch(ctxFor(t), &registryv1.WatchRegistrationsRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			wantCode(t, err, connect.CodeUnauthenticated, "bearer token")
		}
	}},
	{"auth/right token", func(t *testing.T, _ *env, _ rpc, dial func(*testing.T, string) rpc) {
		if _, err := dial(t, apiToken).Get(ctxFor(t), &registryv1.GetRegistrationRequest{TrunkRef: "t-a"}); err != nil {
			t.Fatal(err)
		}
	}},
}

func recvN(t *testing.T, s watchStream, n int) []*registryv1.WatchRegistrationsResponse {
	t.Helper()
	out := make([]*registryv1.WatchRegistrationsResponse, 0, n)
	for range n {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d message(s): %v", len(out), err)
		}
		out = append(out, m)
	}
	return out
}

func watchRefs(ms []*registryv1.WatchRegistrationsResponse) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.GetRegistration().GetTrunkRef())
	}
	return out
}

// testHealth uses grpc-go's health client, without a token.
func testHealth(t *testing.T, e *env) {
	hc := grpc_health_v1.NewHealthClient(dialGRPC(t, e.addr, ""))
	check := func(service string) (grpc_health_v1.HealthCheckResponse_ServingStatus, error) {
		res, err := hc.Check(ctxFor(t), &grpc_health_v1.HealthCheckRequest{Service: service})
		return res.GetStatus(), err
	}
	serving, notServing := grpc_health_v1.HealthCheckResponse_SERVING, grpc_health_v1.HealthCheckResponse_NOT_SERVING
	for _, svc := range []string{"", registryv1connect.RegistrationServiceName} {
		if st, err := check(svc); err != nil || st != serving {
			t.Fatalf("check(%q) = %v, %v", svc, st, err)
		}
	}
	_, err := check("no.such.Service")
	wantCode(t, err, connect.CodeNotFound, "")

	// A store fault younger than the grace period is tolerated; an older one is not.
	e.fx.fault.Store(&storeFault{err: errors.New("redis: connection refused"), since: time.Now().Add(-time.Second)})
	if st, err := check(""); err != nil || st != serving {
		t.Fatalf("fresh fault: %v, %v", st, err)
	}
	e.fx.fault.Store(&storeFault{err: errors.New("redis: connection refused"), since: time.Now().Add(-controlapi.StoreFaultGrace - time.Minute)})
	for _, svc := range []string{"", registryv1connect.RegistrationServiceName} {
		if st, err := check(svc); err != nil || st != notServing {
			t.Fatalf("old fault: check(%q) = %v, %v", svc, st, err)
		}
	}
	e.fx.fault.Store(nil)
	if st, err := check(""); err != nil || st != serving {
		t.Fatalf("recovered: %v, %v", st, err)
	}
}

// testReflection lists services with grpc-go's reflection clients (v1 and v1alpha), without
// a token: every service served, the reflection services themselves too, as a grpc-go
// server lists them (what grpcurl list shows). It resolves the RegistrationService's
// file with its imports, and the reflection service's.
func testReflection(t *testing.T, e *env) {
	conn := dialGRPC(t, e.addr, "")
	want := []string{
		"grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection",
		registryv1connect.RegistrationServiceName,
	}

	v1, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil {
		t.Fatal(err)
	}
	res, err := v1.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("v1 services = %v, want %v", names, want)
	}
	if err := v1.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: registryv1connect.RegistrationServiceName},
	}); err != nil {
		t.Fatal(err)
	}
	res, err = v1.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.GetFileDescriptorResponse().GetFileDescriptorProto()); n < 2 {
		t.Fatalf("file containing the service: %d descriptors (%v)", n, res.GetErrorResponse())
	}
	for _, svc := range want[1:3] {
		if err := v1.Send(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc},
		}); err != nil {
			t.Fatal(err)
		}
		res, err = v1.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.GetFileDescriptorResponse().GetFileDescriptorProto()); n < 1 {
			t.Fatalf("file containing %s: none (%v)", svc, res.GetErrorResponse())
		}
	}
	if err := v1.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of v1 stream: %v", err)
	}

	// The v1alpha service is deprecated, but grpcurl and older clients still ask it.
	alpha, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := alpha.Send(&reflectionv1alpha.ServerReflectionRequest{
		MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil {
		t.Fatal(err)
	}
	ares, err := alpha.Recv()
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, s := range ares.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("v1alpha services = %v, want %v", names, want)
	}
	_ = alpha.CloseSend()
}
