package cluster_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/redistest"
)

// TestTraceClaimAndRenew: with a TracerProvider, Claim and Renew each make one span
// with their counts, under the caller's span.
func TestTraceClaimAndRenew(t *testing.T) {
	client := redistest.Mini(t).Client
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := cluster.New(cluster.Options{Client: client, ReplicaID: "r1", TracerProvider: tp})

	ctx, round := tp.Tracer("test").Start(context.Background(), "round")
	if got, err := c.Claim(ctx, []string{"a", "b", "c"}); err != nil || len(got) != 3 {
		t.Fatalf("Claim = %v, %v", got, err)
	}
	if lost, err := c.Renew(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("Renew = %v, %v", lost, err)
	}
	round.End()

	want := map[string]map[attribute.Key]string{
		"cluster.claim": {"registry.leases.requested": "3", "registry.leases.claimed": "3", "registry.leases.takeovers": "0"},
		"cluster.renew": {"registry.leases.held": "3", "registry.leases.lost": "0"},
	}
	seen := 0
	for _, s := range sr.Ended() {
		w, ok := want[s.Name()]
		if !ok {
			continue
		}
		seen++
		if s.Parent().SpanID() != round.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the caller's span", s.Name())
		}
		got := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value.String()
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", s.Name(), k, got[k], v)
			}
		}
	}
	if seen != 2 {
		t.Errorf("%d claim and renew spans, want 2", seen)
	}
}
