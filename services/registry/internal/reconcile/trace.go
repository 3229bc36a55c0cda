package reconcile

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. The engine makes OpenTelemetry spans only when Options.TracerProvider is
// set; without one every helper here returns at once, allocating nothing, so a REGISTER
// exchange costs what it did before tracing existed. The spans:
//
//   - registry.discover: one discovery tick (FindBy, or the desired set a leader
//     published), with the trunks seen and, when applied, those added, changed and
//     removed. The FindBy call is its child (the API client's span).
//   - registry.register: one REGISTER exchange of a trunk's binding (an unregister
//     too), made by package exchange with the engine's tracer (see its trace.go). Each
//     SendMessage is its child (the Requester client's span), and carries the trace
//     context to the Requester.
//   - registry.store.write: one group-commit flush to Redis, with its batch size and
//     the writes refused (another replica's lease), made by package groupcommit with
//     the engine's tracer.
//   - registry.lease.round: one lease round with several replicas (renewal, leases
//     lost, whether trunks are reassigned), and registry.reassign for the claims that
//     follow a change of members.
//
// No attribute, event or status ever carries a secret: no password, no X-Gateway-Auth
// value, no Authorization or digest response. Only refs, addresses, counts, codes and
// the record's reason (which is never a secret either) are recorded.

// tracerName is the instrumentation scope of the engine's spans.
const tracerName = "sipreg.dev/services/registry/internal/reconcile"

// Attribute keys of the engine's spans.
const (
	attrAdded        = attribute.Key("registry.trunks.added")
	attrChanged      = attribute.Key("registry.trunks.changed")
	attrRemoved      = attribute.Key("registry.trunks.removed")
	attrClaims       = attribute.Key("registry.trunks.to_claim")
	attrRenew        = attribute.Key("registry.lease.renew")
	attrLost         = attribute.Key("registry.leases.lost")
	attrMembersMoved = attribute.Key("registry.members.changed")
	attrReassign     = attribute.Key("registry.lease.reassign")
)

// noSpan is the span of a context without one: a no-op whose methods allocate nothing.
var noSpan = trace.SpanFromContext(context.Background())

// newTracer is tp's tracer for the engine, nil (no spans) without tp.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

// startSpan starts a span named name under ctx's, or returns ctx and noSpan when
// tracing is off.
func startSpan(ctx context.Context, tr trace.Tracer, name string) (context.Context, trace.Span) {
	if tr == nil {
		return ctx, noSpan
	}
	return tr.Start(ctx, name)
}

// desiredCounts counts what applying a desired set changed, for the span in ctx.
type desiredCounts struct {
	on                               bool // the span records: count
	added, changed, removed, toClaim int
}

func newDesiredCounts(ctx context.Context) desiredCounts {
	return desiredCounts{on: trace.SpanFromContext(ctx).IsRecording()}
}

// record sets the counts on the span in ctx.
func (c desiredCounts) record(ctx context.Context) {
	if !c.on {
		return
	}
	trace.SpanFromContext(ctx).SetAttributes(attrAdded.Int(c.added), attrChanged.Int(c.changed),
		attrRemoved.Int(c.removed), attrClaims.Int(c.toClaim))
}

// endLeaseRound ends a lease round's span.
func endLeaseRound(span trace.Span, renew, membersChanged bool, lost int, renewErr error, reassign bool) {
	if span.IsRecording() {
		span.SetAttributes(attrRenew.Bool(renew), attrMembersMoved.Bool(membersChanged), attrLost.Int(lost),
			attrReassign.Bool(reassign))
		if renewErr != nil {
			span.SetStatus(codes.Error, renewErr.Error())
		}
	}
	span.End()
}
