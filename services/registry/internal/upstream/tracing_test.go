package upstream

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	sipmessagev2beta1 "sipreg.dev/gen/pb/fonoster/routr/sipmessage/v2beta1"
)

// metaRequester answers every SendMessage with 200 OK and keeps the traceparent
// metadata of each call ("" when there was none).
type metaRequester struct {
	requesterv2beta1.UnimplementedRequesterServer
	mu           sync.Mutex
	traceparents []string
}

func (m *metaRequester) SendMessage(ctx context.Context, _ *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tp := strings.Join(md.Get("traceparent"), ",")
	m.mu.Lock()
	m.traceparents = append(m.traceparents, tp)
	m.mu.Unlock()
	return &requesterv2beta1.SendMessageResponse{Message: &sipmessagev2beta1.SIPMessage{
		MessageType: &sipmessagev2beta1.SIPMessage_ResponseType{ResponseType: sipmessagev2beta1.ResponseType_OK},
	}}, nil
}

func (m *metaRequester) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.traceparents...)
}

func serveRequester(t *testing.T, srv *metaRequester) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	requesterv2beta1.RegisterRequesterServer(g, srv)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// recorder is an in-memory tracer provider and its span recorder.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
}

var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// secretRequest is a REGISTER carrying credentials in X-Gateway-Auth and in an
// Authorization answer.
func secretRequest(password string) *requesterv2beta1.SendMessageRequest {
	return &requesterv2beta1.SendMessageRequest{
		Target: "sip.provider.net:5060",
		Message: &sipmessagev2beta1.SIPMessage{
			Extensions: []*sipmessagev2beta1.Extension{
				{Name: "X-Gateway-Auth", Value: base64.StdEncoding.EncodeToString([]byte("alice:" + password))},
			},
			Authorization: &sipmessagev2beta1.Authorization{Username: "alice", Response: "digest-" + password},
		},
	}
}

// TestRequesterTracing: with WithTracing, SendMessage makes one client span, a child of
// the span in the call's context, and the Requester receives a W3C traceparent naming
// that trace and that client span. Nothing of the request's credentials is recorded.
func TestRequesterTracing(t *testing.T) {
	tp, sr := recorder(t)
	srv := &metaRequester{}
	req, err := DialRequester(serveRequester(t, srv), 10*time.Second, WithTracing(tp, w3c))
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "exchange")
	const password = "pa55-w0rd-secret"
	if _, err := req.SendMessage(ctx, secretRequest(password)); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var client sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil {
		t.Fatalf("no client span among %v", spanNames(sr.Ended()))
	}
	if want := "fonoster.routr.requester.v2beta1.Requester/SendMessage"; client.Name() != want {
		t.Errorf("client span %q, want %q", client.Name(), want)
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() || client.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("client span's parent %v, want the exchange span %v", client.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	got := srv.seen()
	want := fmt.Sprintf("00-%s-%s-01", client.SpanContext().TraceID(), client.SpanContext().SpanID())
	if len(got) != 1 || got[0] != want {
		t.Errorf("traceparent at the Requester %q, want %q", got, want)
	}
	assertNoSecret(t, sr.Ended(), password, base64.StdEncoding.EncodeToString([]byte("alice:"+password)))
}

// TestAPITracing: the raw FindBy call is traced like any other.
func TestAPITracing(t *testing.T) {
	tp, sr := recorder(t)
	api, err := DialAPI(serveTrunks(t, &bigTrunks{items: []*trunksv2beta1.Trunk{{Ref: "t1", SendRegister: true}}}), 10*time.Second, WithTracing(tp, w3c))
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "discover")
	if _, err := api.FindRegisteringRaw(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()
	for _, s := range sr.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			if s.Name() != "fonoster.routr.connect.trunks.v2beta1.Trunks/FindBy" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("client span %q with parent %v, want FindBy under %v", s.Name(), s.Parent().SpanID(), parent.SpanContext().SpanID())
			}
			return
		}
	}
	t.Fatalf("no client span among %v", spanNames(sr.Ended()))
}

// TestNoTracingByDefault: without WithTracing nothing is instrumented: no traceparent
// reaches the Requester even when the caller's context holds a recording span.
func TestNoTracingByDefault(t *testing.T) {
	tp, sr := recorder(t)
	srv := &metaRequester{}
	req, err := DialRequester(serveRequester(t, srv), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "exchange")
	if _, err := req.SendMessage(ctx, secretRequest("x")); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if got := srv.seen(); len(got) != 1 || got[0] != "" {
		t.Errorf("traceparent at the Requester %q, want none", got)
	}
	if n := len(sr.Ended()); n != 1 {
		t.Errorf("%d spans %v, want only the caller's", n, spanNames(sr.Ended()))
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// assertNoSecret fails when any span's name, status, attribute, event or event
// attribute contains one of secrets.
func assertNoSecret(t *testing.T, spans []sdktrace.ReadOnlySpan, secrets ...string) {
	t.Helper()
	check := func(where, s string) {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("a secret reached %s: %q", where, s)
			}
		}
	}
	attrs := func(span string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			check(span+" attribute "+string(kv.Key), kv.Value.String())
		}
	}
	for _, s := range spans {
		check("a span name", s.Name())
		check(s.Name()+" status", s.Status().Description)
		attrs(s.Name(), s.Attributes())
		for _, e := range s.Events() {
			check(s.Name()+" event", e.Name)
			attrs(s.Name()+" event "+e.Name, e.Attributes)
		}
	}
}
