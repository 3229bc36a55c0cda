package grpclite

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	pb "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// requester is a grpc-go Requester whose answer is made by answer.
type requester struct {
	requesterv2beta1.UnimplementedRequesterServer
	answer func(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error)
}

func (r *requester) SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	return r.answer(ctx, req)
}

// serve runs a grpc-go server of r with opts and answers its address.
func serve(t testing.TB, r *requester, opts ...grpc.ServerOption) (string, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	requesterv2beta1.RegisterRequesterServer(g, r)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String(), g
}

// echo answers the request's Call-ID as the answer's reason phrase.
func echo(_ context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	return &requesterv2beta1.SendMessageResponse{Message: &pb.SIPMessage{ReasonPhrase: req.GetMessage().GetCallId().GetCallId()}}, nil
}

// answer decodes a SendMessageResponse with proto.
type answer struct {
	requesterv2beta1.SendMessageResponse
}

func (a *answer) Unmarshal(b []byte) error { return proto.Unmarshal(b, &a.SendMessageResponse) }

func request(callID string) *requesterv2beta1.SendMessageRequest {
	return &requesterv2beta1.SendMessageRequest{Target: "sip.example.net", Message: &pb.SIPMessage{CallId: &pb.CallID{CallId: callID}}}
}

func sendMessage(c *Client) *Method {
	return c.Method(requesterv2beta1.Requester_SendMessage_FullMethodName)
}

func TestCallsAgainstGRPCGo(t *testing.T) {
	addr, _ := serve(t, &requester{answer: echo}, grpc.MaxConcurrentStreams(3))
	c := New(addr, Options{Timeout: 10 * time.Second})
	defer c.Close()
	m := sendMessage(c)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			id := "call-" + string(rune('a'+i%26)) + time.Duration(i).String()
			var a answer
			if err := m.Call(context.Background(), request(id), &a); err != nil {
				errs <- err
				return
			}
			if got := a.GetMessage().GetReasonPhrase(); got != id {
				errs <- status.Errorf(codes.Internal, "answer %q for call %q", got, id)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerStatusIsTheCallsError(t *testing.T) {
	addr, _ := serve(t, &requester{answer: func(context.Context, *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
		return nil, status.Error(codes.InvalidArgument, "bad target: 100% wrong, ünïcode")
	}})
	c := New(addr, Options{Timeout: 10 * time.Second})
	defer c.Close()
	err := sendMessage(c).Call(context.Background(), request("x"), &answer{})
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || st.Message() != "bad target: 100% wrong, ünïcode" {
		t.Fatalf("got %v, want InvalidArgument with the server's message", err)
	}
}

func TestTimeoutEndsTheCall(t *testing.T) {
	seen := make(chan error, 1)
	addr, _ := serve(t, &requester{answer: func(ctx context.Context, _ *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
		<-ctx.Done()
		seen <- ctx.Err()
		return nil, ctx.Err()
	}})
	c := New(addr, Options{Timeout: 200 * time.Millisecond})
	defer c.Close()
	err := sendMessage(c).Call(context.Background(), request("x"), &answer{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if err := <-seen; err == nil {
		t.Fatal("the server's call did not end")
	}
}
