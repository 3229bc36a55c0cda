package upstream

import (
	"context"
	"strings"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"

	"sipreg.dev/services/registry/internal/sipauth"
	"sipreg.dev/services/registry/internal/sipmsg"
)

// sizedRequest is a REGISTER as the registry builds it, padded by a User-Agent of pad
// bytes: 0 gives the usual request (a few hundred bytes), larger ones cross gRPC's
// pooling threshold (1 KiB) and the pooled buffer's size.
func sizedRequest(t testing.TB, pad int, cseq uint32) *requesterv2beta1.SendMessageRequest {
	t.Helper()
	gw, err := sipauth.GatewayAuth(sipauth.Credentials{Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := sipmsg.BuildChecked(sipmsg.Register{
		Domain: "sip.provider.net", Transport: "udp", User: "alice",
		CallID: "3c26f9e1b2d4@sipreg", FromTag: "a73kszlfl", CSeq: cseq, Expires: 600,
		EdgePortHost: "sip01.edgeport.net", EdgePortPort: 5060,
		Methods: []string{"INVITE", "MESSAGE"}, UserAgent: "Routr Registry" + strings.Repeat("x", pad), Gin: true,
		GatewayAuth: gw,
	})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// BenchmarkSendRegister is one SendMessage of the REGISTER the registry sends most
// (through the EdgePort, with gin and X-Gateway-Auth) through RequesterClient, over
// loopback TCP to an in-process Requester answering routrOK (its cost included).
func BenchmarkSendRegister(b *testing.B) {
	rc, err := DialRequester(serveOK(b, routrOK()), 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	req := sizedRequest(b, 0, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rc.SendMessage(ctx, req)
		if err != nil || resp.GetMessage().GetResponseType() != pb.ResponseType_OK {
			b.Fatal(resp, err)
		}
	}
}
