package gen_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	commonv2beta1 "sipreg.dev/gen/pb/fonoster/routr/common/v2beta1"
	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	processorv2beta1 "sipreg.dev/gen/pb/fonoster/routr/processor/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

type requesterServer struct {
	requesterv2beta1.UnimplementedRequesterServer
	got chan *requesterv2beta1.SendMessageRequest
}

func (s *requesterServer) SendMessage(_ context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	s.got <- req
	return &requesterv2beta1.SendMessageResponse{Message: &sipmessagev2beta1.SIPMessage{
		MessageType:  &sipmessagev2beta1.SIPMessage_ResponseType{ResponseType: sipmessagev2beta1.ResponseType_OK},
		ReasonPhrase: "OK",
		CallId:       req.GetMessage().GetCallId(),
	}}, nil
}

type trunksServer struct {
	trunksv2beta1.UnimplementedTrunksServer
}

func (trunksServer) FindBy(_ context.Context, req *trunksv2beta1.FindByRequest) (*trunksv2beta1.FindByResponse, error) {
	if req.GetFieldName() != "sendRegister" {
		return nil, status.Error(codes.InvalidArgument, "unknown field")
	}
	return &trunksv2beta1.FindByResponse{Items: []*trunksv2beta1.Trunk{{
		Ref: "trunk-1", SendRegister: true,
		Uris: []*trunksv2beta1.TrunkURI{{Host: "sip.example.net", Port: 5060, Transport: "UDP", Enabled: true}},
	}}}, nil
}

// TestGeneratedStubsTalk runs the generated Requester and Trunks servers on a loopback
// listener and calls them with the generated grpc-go clients.
func TestGeneratedStubsTalk(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	req := &requesterServer{got: make(chan *requesterv2beta1.SendMessageRequest, 1)}
	requesterv2beta1.RegisterRequesterServer(srv, req)
	trunksv2beta1.RegisterTrunksServer(srv, trunksServer{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := t.Context()

	sent := &requesterv2beta1.SendMessageRequest{
		Target:    "sip.example.net:5060",
		Method:    processorv2beta1.Method_REGISTER,
		Transport: commonv2beta1.Transport_TCP,
		Message: &sipmessagev2beta1.SIPMessage{
			MessageType: &sipmessagev2beta1.SIPMessage_RequestUri{RequestUri: &sipmessagev2beta1.SipURI{Host: "sip.example.net", Port: -1}},
			CallId:      &sipmessagev2beta1.CallID{CallId: "abc@registry"},
			Extensions:  []*sipmessagev2beta1.Extension{{Name: "CSeq", Value: "1 REGISTER"}},
		},
	}
	resp, err := requesterv2beta1.NewRequesterClient(conn).SendMessage(ctx, sent)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if got := resp.GetMessage().GetResponseType(); got != sipmessagev2beta1.ResponseType_OK {
		t.Errorf("response type %v, want OK", got)
	}
	if got := resp.GetMessage().GetCallId().GetCallId(); got != "abc@registry" {
		t.Errorf("call-id %q, want abc@registry", got)
	}
	if got := <-req.got; !proto.Equal(got, sent) {
		t.Errorf("server received %v, want %v", got, sent)
	}

	tc := trunksv2beta1.NewTrunksClient(conn)
	found, err := tc.FindBy(ctx, &trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"})
	if err != nil {
		t.Fatalf("FindBy: %v", err)
	}
	if len(found.GetItems()) != 1 || found.GetItems()[0].GetUris()[0].GetHost() != "sip.example.net" {
		t.Errorf("FindBy answered %v", found)
	}
	if _, err := tc.Get(ctx, &trunksv2beta1.GetTrunkRequest{Ref: "x"}); status.Code(err) != codes.Unimplemented {
		t.Errorf("Get: %v, want Unimplemented", err)
	}
	if _, err := tc.FindBy(ctx, &trunksv2beta1.FindByRequest{FieldName: "name"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("FindBy(name): %v, want InvalidArgument", err)
	}
}
