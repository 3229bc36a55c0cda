package exchange

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// The span of one exchange, registry.register (an unregister too, with expires 0):
// trunk ref, AOR, target, transport, EdgePort and expires asked; one event per answer
// (attempt, CSeq, whether it carried credentials, response code and class); at the end
// the state reached, the last response code and the number of REGISTERs sent. Each
// SendMessage is its child (the Requester client's span). No attribute or event
// carries a secret.

// Attribute keys of the exchange's span.
const (
	AttrTrunk     = attribute.Key("registry.trunk.ref")
	AttrAOR       = attribute.Key("registry.aor")
	AttrTarget    = attribute.Key("registry.target")
	AttrTransport = attribute.Key("registry.transport")
	AttrEdgePort  = attribute.Key("registry.edge_port")
	AttrExpires   = attribute.Key("registry.expires")
	AttrState     = attribute.Key("registry.state")
	AttrCode      = attribute.Key("sip.response.code")
	AttrClass     = attribute.Key("registry.response.class")
	AttrAttempt   = attribute.Key("registry.attempt")
	AttrAttempts  = attribute.Key("registry.attempts")
	AttrCSeq      = attribute.Key("sip.cseq")
	AttrWithAuth  = attribute.Key("registry.authorization")
)

// noSpan is the span of a context without one: a no-op whose methods allocate nothing.
var noSpan = trace.SpanFromContext(context.Background())

// startExchange starts the span of one exchange of rec's binding, asking for expires
// seconds, or returns ctx and noSpan when tr is nil.
func startExchange(ctx context.Context, tr trace.Tracer, rec *registration.Record, expires int) (context.Context, trace.Span) {
	if tr == nil {
		return ctx, noSpan
	}
	ctx, span := tr.Start(ctx, "registry.register")
	if span.IsRecording() {
		span.SetAttributes(AttrTrunk.String(rec.TrunkRef), AttrAOR.String(rec.AOR), AttrTarget.String(rec.Target),
			AttrTransport.String(rec.Transport), AttrEdgePort.String(rec.EdgePort), AttrExpires.Int(expires))
	}
	return ctx, span
}

// traceAnswer adds the answer to one REGISTER to the exchange's span.
func traceAnswer(span trace.Span, attempt int, cseq uint32, withAuth bool, out sipmsg.Outcome) {
	if !span.IsRecording() {
		return
	}
	span.AddEvent("register.answer", trace.WithAttributes(AttrAttempt.Int(attempt), AttrCSeq.Int64(int64(cseq)),
		AttrWithAuth.Bool(withAuth), AttrCode.Int(out.Code), AttrClass.String(out.Class.String())))
}

// endExchange ends the span of an exchange with its result; cseq0 is the binding's
// CSeq before it, so the REGISTERs sent are rec.CSeq-cseq0.
func endExchange(span trace.Span, res *Result, rec *registration.Record, cseq0 uint32) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(AttrState.String(string(res.State)), AttrAttempts.Int(int(rec.CSeq-cseq0)))
	if res.Err == nil && res.Out.Code != 0 {
		span.SetAttributes(AttrCode.Int(res.Out.Code))
	}
	if res.State != registration.StateRegistered {
		span.SetStatus(codes.Error, res.Reason)
	}
	span.End()
}
