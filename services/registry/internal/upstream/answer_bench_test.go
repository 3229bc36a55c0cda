package upstream

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// routrOK is a 200 OK to a REGISTER as Routr's Requester answers it: every header it
// knows in its field, the others (CSeq, Server, Allow, ...) as extensions.
func routrOK() *requesterv2beta1.SendMessageResponse {
	addr := func(user, host string, port int32) *pb.Address {
		return &pb.Address{Uri: &pb.SipURI{User: user, Host: host, Port: port}}
	}
	return &requesterv2beta1.SendMessageResponse{Message: &pb.SIPMessage{
		MessageType:   &pb.SIPMessage_ResponseType{ResponseType: pb.ResponseType_OK},
		ReasonPhrase:  "OK",
		From:          &pb.From{Address: addr("alice", "sip.provider.net", 0), Tag: "a73kszlfl"},
		To:            &pb.To{Address: addr("alice", "sip.provider.net", 0), Tag: "1410948204"},
		Contact:       &pb.Contact{Address: addr("alice", "10.0.0.7", 5060), Expires: 600, QValue: 1},
		CallId:        &pb.CallID{CallId: "3c26f9e1b2d4@sipreg"},
		Expires:       &pb.Expires{Expires: 600},
		ContentLength: &pb.ContentLength{ContentLength: 0},
		Via: []*pb.Via{
			{Host: "sip01.edgeport.net", Port: 5060, Branch: "z9hG4bK776asdhds", Transport: "UDP", Received: "10.0.0.7", RPort: 5060},
		},
		Extensions: []*pb.Extension{
			{Name: "CSeq", Value: "11 REGISTER"},
			{Name: "Server", Value: "Provider SBC 4.2"},
			{Name: "Allow", Value: "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"},
			{Name: "Supported", Value: "path, gruu"},
			{Name: "Date", Value: "Sun, 06 Dec 2026 03:02:22 GMT"},
		},
	}}
}

// okRequester answers every SendMessage with the same answer.
type okRequester struct {
	requesterv2beta1.UnimplementedRequesterServer
	resp *requesterv2beta1.SendMessageResponse
}

func (o *okRequester) SendMessage(context.Context, *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	return o.resp, nil
}

func serveOK(tb testing.TB, resp *requesterv2beta1.SendMessageResponse) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := grpc.NewServer()
	requesterv2beta1.RegisterRequesterServer(g, &okRequester{resp: resp})
	go func() { _ = g.Serve(lis) }()
	tb.Cleanup(g.Stop)
	return lis.Addr().String()
}

// BenchmarkSendMessage is one SendMessage round trip to an in-process Requester
// answering routrOK (the server's cost included, the same for both): /proto through
// the generated client and gRPC's proto codec, /lean through RequesterClient (grpclite
// and the lean answer).
func BenchmarkSendMessage(b *testing.B) {
	addr := serveOK(b, routrOK())
	rc, err := DialRequester(addr, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	req := secretRequest("pw")
	ctx := context.Background()
	generated := generatedClient(b, addr)
	for _, c := range []struct {
		name string
		send func(context.Context, *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error)
	}{
		{"proto", func(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
			ctx, cancel := context.WithTimeout(ctx, rc.timeout)
			defer cancel()
			return generated.SendMessage(ctx, req)
		}},
		{"lean", rc.SendMessage},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.send(ctx, req)
				if err != nil || resp.GetMessage().GetResponseType() != pb.ResponseType_OK {
					b.Fatal(resp, err)
				}
			}
		})
	}
}

// BenchmarkDecodeAnswer is the decode of routrOK: /proto by proto.Unmarshal, as gRPC's
// proto codec does it, /lean by the lean decoder.
func BenchmarkDecodeAnswer(b *testing.B) {
	raw, err := proto.Marshal(routrOK())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var resp requesterv2beta1.SendMessageResponse
			if err := proto.Unmarshal(raw, &resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := new(leanAnswer)
			if err := a.decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
