package upstream

import (
	"bytes"
	"context"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
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
	w := &wireRequester{}
	rc, generated := dialWire(t, w)
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
		if calls[0].method != calls[1].method || !bytes.Equal(calls[0].req, calls[1].req) || !reflect.DeepEqual(calls[0].md, calls[1].md) {
			t.Fatalf("not the same call on the wire:\ngenerated %s %v %x\nlean      %s %v %x",
				calls[0].method, calls[0].md, calls[0].req, calls[1].method, calls[1].md, calls[1].req)
		}
		if ct := calls[1].md.Get("content-type"); len(ct) != 1 || ct[0] != "application/grpc" {
			t.Fatalf("content-type %q", ct)
		}
		if wantErr != nil {
			refused++
			if gotErr == nil || gotErr.Error() != "requester sendMessage: "+wantErr.Error() {
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
func dialWire(t *testing.T, w *wireRequester) (*RequesterClient, requesterv2beta1.RequesterClient) {
	t.Helper()
	rc, err := DialRequester(serveWire(t, w), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc, requesterv2beta1.NewRequesterClient(rc.conn)
}
