package controlapi_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health/grpc_health_v1"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/services/registry/internal/controlapi"
)

// TestTracing: with a TracerProvider every RegistrationService call gets one server
// span, a call the bearer check refuses too (with its status code); health checks get
// none; no token reaches a span.
func TestTracing(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := newEnv(t, func(o *controlapi.Options, _ *fixture) { o.TracerProvider = tp })
	tr := transports(e.baseURL, e.addr, e.seen)[0]
	if _, err := tr.dial(t, apiToken).List(ctxFor(t), &registryv1.ListRegistrationsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.dial(t, wrongToken).List(ctxFor(t), &registryv1.ListRegistrationsRequest{}); err == nil {
		t.Fatal("a wrong token was accepted")
	}
	hc := grpc_health_v1.NewHealthClient(dialGRPC(t, e.addr, ""))
	if _, err := hc.Check(ctxFor(t), &grpc_health_v1.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	var ok, refused int
	for _, s := range sr.Ended() {
		if s.SpanKind() != trace.SpanKindServer || s.Name() != "sipreg.registry.v1.RegistrationService/ListRegistrations" {
			t.Errorf("unexpected span %q (kind %v)", s.Name(), s.SpanKind())
			continue
		}
		var code string
		for _, kv := range s.Attributes() {
			if kv.Key == "rpc.response.status_code" {
				code = kv.Value.String()
			}
			for _, secret := range []string{apiToken, wrongToken} {
				if strings.Contains(kv.Value.String(), secret) {
					t.Errorf("the token reached span attribute %s", kv.Key)
				}
			}
		}
		switch code {
		case "OK":
			ok++
		case "UNAUTHENTICATED":
			refused++
		default:
			t.Errorf("span with status code %q", code)
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("%d spans of served calls and %d of refused ones, want 1 and 1", ok, refused)
	}
}

// TestNoTracingByDefault: without a TracerProvider the handler records nothing, even
// when the process has one.
func TestNoTracingByDefault(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := newEnv(t)
	ctx, parent := tp.Tracer("test").Start(ctxFor(t), "caller")
	if _, err := transports(e.baseURL, e.addr, e.seen)[0].dial(t, apiToken).List(ctx, &registryv1.ListRegistrationsRequest{}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if n := len(sr.Ended()); n != 1 {
		t.Errorf("%d spans, want only the caller's", n)
	}
}
