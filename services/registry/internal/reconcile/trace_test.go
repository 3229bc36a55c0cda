package reconcile

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/exchange"
	"sipreg.dev/services/registry/internal/groupcommit"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
	"sipreg.dev/services/registry/internal/watch"
)

// withRecorder is a start mod that gives the engine an in-memory tracer provider.
func withRecorder(t *testing.T) (*tracetest.SpanRecorder, func(*Reconciler)) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sr, func(r *Reconciler) {
		r.tracer = newTracer(tp)
		r.xr.Tracer = r.tracer
		if r.commit != nil {
			r.commit = groupcommit.New(r.writeRecords, r.tracer)
			r.commit.OnWritten = r.written
		}
	}
}

// waitSpans polls the recorder until pred holds over the ended spans (or fails after
// a deadline) and returns them.
func waitSpans(t *testing.T, sr *tracetest.SpanRecorder, what string, pred func([]sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		spans := sr.Ended()
		if pred(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name())
			}
			t.Fatalf("timed out waiting for %s; spans %v", what, names)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func named(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := make(map[attribute.Key]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// wantAttrs checks that kvs hold every key of want with its value.
func wantAttrs(t *testing.T, what string, kvs []attribute.KeyValue, want map[attribute.Key]string) {
	t.Helper()
	got := attrMap(kvs)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

// TestTraceOfOneRegistration: a discovery tick, a REGISTER exchange answered with a
// challenge then 200, and the write of its outcome each make their span, with the
// documented attributes and one event per answer.
func TestTraceOfOneRegistration(t *testing.T) {
	sr, mod := withRecorder(t)
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", "pw")}}
	req := &fakeRequester{answer: digestFake(false, "alice")}
	h := start(t, testSpec(), api, req, nil, mod)
	h.waitFor("registered", stateIs("t1", registration.StateRegistered))
	spans := waitSpans(t, sr, "discovery, exchange and write", func(s []sdktrace.ReadOnlySpan) bool {
		return len(named(s, "registry.discover")) > 0 && len(named(s, "registry.register")) > 0 && len(named(s, "registry.store.write")) > 0
	})

	wantAttrs(t, "discovery", named(spans, "registry.discover")[0].Attributes(), map[attribute.Key]string{
		desired.AttrSeen: "1", desired.AttrUnchanged: "false", attrAdded: "1", attrChanged: "0", attrRemoved: "0",
	})
	x := named(spans, "registry.register")
	if len(x) != 1 {
		t.Fatalf("%d exchange spans, want 1", len(x))
	}
	wantAttrs(t, "exchange", x[0].Attributes(), map[attribute.Key]string{
		exchange.AttrTrunk: "t1", exchange.AttrAOR: "sip:alice@sip.one.net", exchange.AttrTarget: "sip.one.net:5060", exchange.AttrTransport: "udp",
		exchange.AttrEdgePort: "edge.local:5060", exchange.AttrExpires: "600", exchange.AttrState: "registered", exchange.AttrCode: "200", exchange.AttrAttempts: "2",
	})
	if x[0].Status().Code == codes.Error {
		t.Errorf("exchange status %v, want not an error", x[0].Status())
	}
	ev := x[0].Events()
	if len(ev) != 2 {
		t.Fatalf("%d events, want one per answer (2)", len(ev))
	}
	wantAttrs(t, "first answer", ev[0].Attributes, map[attribute.Key]string{
		exchange.AttrAttempt: "1", exchange.AttrCode: "401", exchange.AttrClass: sipmsg.ClassChallenge.String(), exchange.AttrWithAuth: "false"})
	wantAttrs(t, "second answer", ev[1].Attributes, map[attribute.Key]string{
		exchange.AttrAttempt: "2", exchange.AttrCode: "200", exchange.AttrClass: sipmsg.ClassOK.String(), exchange.AttrWithAuth: "true"})
	if w := named(spans, "registry.store.write"); attrMap(w[0].Attributes())["registry.batch.size"] == "0" {
		t.Errorf("a flush of no record was traced")
	}
}

// TestTraceFailureStatus: an exchange that ends rejected has an error status with the
// record's reason.
func TestTraceFailureStatus(t *testing.T) {
	sr, mod := withRecorder(t)
	api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "mallory", "bad")}}
	req := &fakeRequester{answer: digestFake(false, "alice")}
	h := start(t, testSpec(), api, req, nil, mod)
	rec := h.waitFor("auth-failed", stateIs("t1", registration.StateAuthFailed)).Record
	x := named(waitSpans(t, sr, "exchange", func(s []sdktrace.ReadOnlySpan) bool { return len(named(s, "registry.register")) > 0 }), "registry.register")[0]
	if st := x.Status(); st.Code != codes.Error || st.Description != rec.LastError {
		t.Errorf("status %v, want an error with %q", st, rec.LastError)
	}
	wantAttrs(t, "exchange", x.Attributes(), map[attribute.Key]string{exchange.AttrState: "auth-failed", exchange.AttrCode: "401", exchange.AttrAttempts: "2"})
}

// TestTraceHoldsNoSecret walks every span, attribute, event and status recorded while
// trunks with credentials register (a digest answer in registry mode, X-Gateway-Auth
// in edgeport mode) and unregister, and finds none of the secrets sent.
func TestTraceHoldsNoSecret(t *testing.T) {
	for _, mode := range []string{config.AuthRegistry, config.AuthEdgePort} {
		t.Run(mode, func(t *testing.T) {
			const password = "Pa55-w0rd-XYZZY"
			sr, mod := withRecorder(t)
			spec := testSpec()
			spec.AuthMode = mode
			api := &fakeAPI{trunks: []*trunksv2beta1.Trunk{mkTrunk("t1", "sip.one.net", "alice", password)}}
			req := &fakeRequester{answer: digestFake(true, "alice")}
			if mode == config.AuthEdgePort {
				req.answer = digestFake(false, "nobody")
			}
			h := start(t, spec, api, req, nil, mod)
			want := registration.StateRegistered
			if mode == config.AuthEdgePort {
				want = registration.StateAuthFailed
			}
			h.waitFor(string(want), stateIs("t1", want))
			api.set(nil, nil) // gone from the API: unregistered
			h.r.discover(context.Background())
			h.waitFor("removed", func(ev watch.Event) bool { return ev.Removed })
			h.stop()

			secrets := []string{password, base64.StdEncoding.EncodeToString([]byte("alice:" + password))}
			for _, r := range req.requests() {
				m := r.GetMessage()
				if v, ok := sipmsg.Header(m, sipmsg.GatewayAuthHeader); ok && v != "" {
					secrets = append(secrets, v)
				}
				if v, ok := sipmsg.Header(m, "Proxy-Authorization"); ok {
					secrets = append(secrets, v)
					if i := strings.Index(v, `response="`); i >= 0 {
						secrets = append(secrets, strings.SplitN(v[i+10:], `"`, 2)[0])
					}
				}
				if a := m.GetAuthorization(); a != nil && a.GetResponse() != "" {
					secrets = append(secrets, a.GetResponse())
				}
			}
			if len(secrets) < 3 {
				t.Fatalf("no credentials were sent (%d secrets): the test proves nothing", len(secrets))
			}
			spans := sr.Ended()
			if len(named(spans, "registry.register")) == 0 {
				t.Fatal("no exchange traced: the test proves nothing")
			}
			assertNoSecret(t, spans, secrets...)
		})
	}
}

// assertNoSecret fails when any span's name, status, attribute, event or event
// attribute contains one of secrets.
func assertNoSecret(t *testing.T, spans []sdktrace.ReadOnlySpan, secrets ...string) {
	t.Helper()
	check := func(where, s string) {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("a secret reached %s: %q", where, s)
			}
		}
	}
	attrs := func(span string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			check(span+" attribute "+string(kv.Key), kv.Value.String())
		}
	}
	for _, s := range spans {
		check("a span name", s.Name())
		check(s.Name()+" status", s.Status().Description)
		attrs(s.Name(), s.Attributes())
		for _, e := range s.Events() {
			check(s.Name()+" event", e.Name)
			attrs(s.Name()+" event "+e.Name, e.Attributes)
		}
	}
}

// TestTracingOffAllocatesNothing: without a tracer provider the helpers on the hot path
// cost no allocation.
func TestTracingOffAllocatesNothing(t *testing.T) {
	xctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		counts := newDesiredCounts(xctx)
		counts.record(xctx)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per discovery with tracing off, want 0", allocs)
	}
}

// renewCoord is a Coordinator whose renewals fail.
type renewCoord struct {
	ownership.Coordinator
	renews atomic.Int64
}

func (c *renewCoord) ID() string                      { return "self" }
func (c *renewCoord) LeaseTTL() time.Duration         { return 30 * time.Millisecond }
func (c *renewCoord) MembersChanged() <-chan struct{} { return nil }
func (c *renewCoord) Renew(context.Context) ([]string, error) {
	c.renews.Add(1)
	return nil, errors.New("redis: connection refused")
}

// TestTraceLeaseRound: each lease round is a span, with the renewal's error.
func TestTraceLeaseRound(t *testing.T) {
	sr, mod := withRecorder(t)
	own := ownership.NewLeases(&renewCoord{}, nil, nil, nil)
	r := New(Options{Spec: testSpec(), Ownership: own})
	mod(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); own.Run(ctx, r, r.leaseSpan) }()
	spans := waitSpans(t, sr, "a lease round", func(s []sdktrace.ReadOnlySpan) bool { return len(named(s, "registry.lease.round")) > 0 })
	cancel()
	<-done
	round := named(spans, "registry.lease.round")[0]
	wantAttrs(t, "lease round", round.Attributes(), map[attribute.Key]string{
		attrRenew: "true", attrLost: "0", attrMembersMoved: "false", attrReassign: "false"})
	if round.Status().Code != codes.Error {
		t.Errorf("round status %v, want the renewal's error", round.Status())
	}
}

// BenchmarkExchangeTraced is BenchmarkExchange with every exchange sampled and
// exported (to nowhere) through a batch span processor: the cost of tracing when on.
func BenchmarkExchangeTraced(b *testing.B) {
	r, x, rec := benchExchange(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r.xr.Tracer = newTracer(tp)
	send := r.sender(&rec, rec)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := r.xr.Run(ctx, x, &rec, send); res.State != registration.StateRegistered {
			b.Fatalf("state %s: %s", res.State, res.Reason)
		}
	}
}
