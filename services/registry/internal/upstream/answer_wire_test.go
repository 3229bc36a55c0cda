package upstream

import (
	"bytes"
	"context"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"

	"sipreg.dev/services/registry/internal/sipmsg"
)

// frames is a server codec that keeps messages as bytes.
type frames struct{}

func (frames) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (frames) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (frames) Name() string { return "proto" }

// wireRequester records each call's method, metadata and request bytes, and answers
// with the bytes of answer.
type wireRequester struct {
	mu     sync.Mutex
	answer []byte
	calls  []wireCall
}

type wireCall struct {
	method string
	md     metadata.MD
	req    []byte
}

func (w *wireRequester) handle(_ any, stream grpc.ServerStream) error {
	var req []byte
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	method, _ := grpc.MethodFromServerStream(stream)
	md, _ := metadata.FromIncomingContext(stream.Context())
	w.mu.Lock()
	w.calls = append(w.calls, wireCall{method: method, md: md, req: req})
	answer := w.answer
	w.mu.Unlock()
	return stream.SendMsg(&answer)
}

func serveWire(t *testing.T, w *wireRequester) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(frames{}), grpc.UnknownServiceHandler(w.handle))
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// TestSendMessageWire: RequesterClient sends what the generated client sends (the same
// method, metadata and request bytes: content-type "application/grpc", no subtype), and
// its answers read as the generated client's do; an answer proto refuses fails both
// calls with the same error.
func TestSendMessageWire(t *testing.T) {
	t.Run("grpclite", func(t *testing.T) { testSendMessageWire(t) })
	t.Run("grpc-go", func(t *testing.T) { testSendMessageWire(t, viaGRPCGo()) })
}

func testSendMessageWire(t *testing.T, opts ...DialOption) {
	w := &wireRequester{}
	rc, generated := dialWire(t, w, opts...)
	ctx := context.Background()
	req := secretRequest("pw")

	g := newAnswerGen(4)
	answers := [][]byte{mustMarshal(t, routrOK()), {0xff}, nil}
	for range 200 {
		answers = append(answers, g.answer())
	}
	refused := 0
	for _, answer := range answers {
		w.mu.Lock()
		w.answer, w.calls = answer, nil
		w.mu.Unlock()
		want, wantErr := generated.SendMessage(ctx, req)
		got, gotErr := rc.SendMessage(ctx, req)

		w.mu.Lock()
		calls := w.calls
		w.mu.Unlock()
		if len(calls) != 2 {
			t.Fatalf("%d calls reached the server, want 2", len(calls))
		}
		if rc.lean != nil {
			// grpclite names itself; the rest of the metadata is grpc-go's.
			if ua := calls[1].md.Get("user-agent"); len(ua) != 1 || ua[0] != "sipreg-grpclite" {
				t.Fatalf("user-agent %q", ua)
			}
			calls[0].md.Delete("user-agent")
			calls[1].md.Delete("user-agent")
		}
		if calls[0].method != calls[1].method || !bytes.Equal(calls[0].req, calls[1].req) || !reflect.DeepEqual(calls[0].md, calls[1].md) {
			t.Fatalf("not the same call on the wire:\ngenerated %s %v %x\nlean      %s %v %x",
				calls[0].method, calls[0].md, calls[0].req, calls[1].method, calls[1].md, calls[1].req)
		}
		if ct := calls[1].md.Get("content-type"); len(ct) != 1 || ct[0] != "application/grpc" {
			t.Fatalf("content-type %q", ct)
		}
		if wantErr != nil {
			refused++
			cause := protoCause(wantErr)
			if cause == "" || gotErr == nil || status.Code(gotErr) != status.Code(wantErr) || !strings.HasSuffix(gotErr.Error(), cause) {
				t.Fatalf("answer %x: error %v, the generated client's %v", answer, gotErr, wantErr)
			}
			continue
		}
		if gotErr != nil {
			t.Fatalf("answer %x: %v", answer, gotErr)
		}
		for _, asked := range []int{0, 600} {
			wo, we := sipmsg.Read(want, asked)
			gotOut, ge := sipmsg.Read(got, asked)
			if !reflect.DeepEqual(gotOut, wo) || errText(ge) != errText(we) {
				t.Fatalf("answer %x: Read %+v, %v; the generated client's %+v, %v", answer, gotOut, ge, wo, we)
			}
		}
	}
	if refused == 0 || refused == len(answers) {
		t.Errorf("%d of %d answers refused: both kinds must be tried", refused, len(answers))
	}
}

// protoCause is the text of proto's error in the error of an answer proto refused.
func protoCause(err error) string {
	msg := status.Convert(err).Message()
	_, cause, _ := strings.Cut(msg, "the received message: ")
	return cause
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialWire connects a RequesterClient to w, closed when the test ends, and a generated
// client on the same connection.
func dialWire(t *testing.T, w *wireRequester, opts ...DialOption) (*RequesterClient, requesterv2beta1.RequesterClient) {
	t.Helper()
	addr := serveWire(t, w)
	rc, err := DialRequester(addr, 10*time.Second, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc, generatedClient(t, addr)
}

// generatedClient is the generated Requester client on a grpc-go connection of its own.
func generatedClient(tb testing.TB, addr string) requesterv2beta1.RequesterClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return requesterv2beta1.NewRequesterClient(conn)
}

// viaGRPCGo makes DialRequester call through grpc-go, as it does when tracing.
func viaGRPCGo() DialOption { return func(c *dialConfig) { c.grpcGo = true } }
