package cluster

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing: with Options.TracerProvider, Claim and Renew each make one span
// (cluster.claim, cluster.renew) with the leases asked for, got, taken over, held
// and lost; without it they make none. Only counts are recorded.

// tracerName is the instrumentation scope of the package's spans.
const tracerName = "sipreg.dev/services/registry/internal/cluster"

// Attribute keys of the package's spans.
const (
	attrRequested = attribute.Key("registry.leases.requested")
	attrClaimed   = attribute.Key("registry.leases.claimed")
	attrTakeovers = attribute.Key("registry.leases.takeovers")
	attrHeld      = attribute.Key("registry.leases.held")
	attrLost      = attribute.Key("registry.leases.lost")
)

// noSpan is the span of a context without one: a no-op.
var noSpan = trace.SpanFromContext(context.Background())

// startSpan starts a span named name under ctx's, or returns ctx and noSpan when
// tracing is off.
func (c *Cluster) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if c.tracer == nil {
		return ctx, noSpan
	}
	return c.tracer.Start(ctx, name)
}

// endSpan sets attrs and err's status on span, and ends it.
func endSpan(span trace.Span, err error, attrs ...attribute.KeyValue) {
	if span.IsRecording() {
		span.SetAttributes(attrs...)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
