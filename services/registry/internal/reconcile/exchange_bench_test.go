package reconcile

import (
	"context"
	"testing"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/exchange"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/trunk"
)

// BenchmarkExchange measures the hot path: one REGISTER exchange of a trunk with
// credentials (build, pace, send, read the 200), as a worker runs it, against an
// in-process Requester.
func BenchmarkExchange(b *testing.B) {
	r, x, rec := benchExchange(b)
	send := r.sender(&rec, rec)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := r.xr.Run(ctx, x, &rec, send); res.State != registration.StateRegistered {
			b.Fatalf("state %s: %s", res.State, res.Reason)
		}
	}
}

// benchExchange is an engine answering every REGISTER with 200, the exchange of one
// trunk's binding, and its record.
func benchExchange(b *testing.B) (*Reconciler, exchange.Exchange, registration.Record) {
	b.Helper()
	req := &fakeRequester{noRecord: true, answer: func(*requesterv2beta1.SendMessageRequest, int) (*sipmessagev2beta1.SIPMessage, error) {
		return ok(600), nil
	}}
	spec := testSpec()
	spec.RegistersPerSecond = 1e9
	r := New(Options{Spec: spec, Requester: req})
	t, err := trunk.FromProto(mkTrunk("t1", "sip.one.net", "alice", "pw"))
	if err != nil {
		b.Fatal(err)
	}
	rec := r.freshRecord(t, t.Fingerprint())
	u := t.URIs[0]
	rec.AOR, rec.Target, rec.Transport = "sip:alice@sip.one.net", "sip.one.net:5060", u.Transport
	x, err := r.newExchange(t, rec, u.Host, u.Port, u.Transport, t.User(u), spec.EdgePorts[0])
	if err != nil {
		b.Fatal(err)
	}
	x.Reg.Expires = 600
	return r, x, rec
}
