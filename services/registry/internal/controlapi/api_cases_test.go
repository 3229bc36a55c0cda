package controlapi_test

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

type apiCase struct {
	name string
	run  func(t *testing.T, e *env, c rpc, dial func(*testing.T, string) rpc)
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
