package exchange

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/trunk"
)

// BenchmarkRun is one refresh answered 200 through Routr's EdgePort: the exchange's
// own cost (New, BuildChecked, Read), the Requester left out.
func BenchmarkRun(b *testing.B) {
	s := Settings{Gin: true, EdgePortAuth: true, Methods: []string{"INVITE", "MESSAGE"}, UserAgent: "Routr Registry"}
	rn := &Runner{Settings: s, Observe: func(string, time.Duration) {}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tr := trunk.Trunk{Ref: "trunk-1", Username: "alice", Password: "pw"}
	resp := &requesterv2beta1.SendMessageResponse{Message: ok()}
	send := func(context.Context, *requesterv2beta1.SendMessageRequest, bool) (*requesterv2beta1.SendMessageResponse, time.Duration, error) {
		return resp, time.Millisecond, nil
	}
	rec := registration.Record{TrunkRef: "trunk-1", CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: 10}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		x, err := New(s, tr, rec, "sip.provider.net", 0, "udp", "alice", "sip01.edgeport.net", 5060)
		if err != nil {
			b.Fatal(err)
		}
		x.Reg.Expires = 600
		if res := rn.Run(ctx, x, &rec, send); res.State != registration.StateRegistered {
			b.Fatal(res.Reason)
		}
	}
}
