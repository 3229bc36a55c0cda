package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/tools/fakerequester"
)

// receivedSpan is one span an OTLP receiver got, with its resource's service.name.
type receivedSpan struct {
	service string
	span    *tracev1.Span
}

// otlpReceiver is a tiny OTLP/gRPC trace collector: it keeps every span exported to
// it.
type otlpReceiver struct {
	collectortracev1.UnimplementedTraceServiceServer
	addr string

	mu      sync.Mutex
	spans   []receivedSpan
	changed chan struct{} // closed and replaced on every export
}

// startReceiver serves an OTLP trace receiver on addr ("127.0.0.1:0" for any port)
// until the test ends.
func startReceiver(t *testing.T, addr string) (*otlpReceiver, error) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o := &otlpReceiver{addr: lis.Addr().String(), changed: make(chan struct{})}
	srv := grpc.NewServer()
	collectortracev1.RegisterTraceServiceServer(srv, o)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return o, nil
}

func (o *otlpReceiver) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrString(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, receivedSpan{service: service, span: s})
			}
		}
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// wait blocks until pred holds over the spans received, or fails the test at the
// deadline.
func (o *otlpReceiver) wait(t *testing.T, what string, d time.Duration, pred func([]receivedSpan) bool) []receivedSpan {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		spans, changed := append([]receivedSpan(nil), o.spans...), o.changed
		o.mu.Unlock()
		if pred(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			var names []string
			for _, s := range spans {
				names = append(names, s.span.GetName())
			}
			t.Fatalf("timed out waiting for %s; spans received: %v", what, names)
		}
	}
}

func attrString(kvs []*commonv1.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			v := kv.GetValue()
			switch {
			case v.GetStringValue() != "":
				return v.GetStringValue()
			case v.GetIntValue() != 0:
				return fmt.Sprint(v.GetIntValue())
			}
			return v.String()
		}
	}
	return ""
}

const sendMessageSpan = "fonoster.routr.requester.v2beta1.Requester/SendMessage"

// exchangeOf finds the exchange span of trunk ref and the SendMessage client span
// under it.
func exchangeOf(spans []receivedSpan, ref string) (exchange, send *tracev1.Span) {
	for _, s := range spans {
		if s.span.GetName() == "registry.register" && attrString(s.span.GetAttributes(), "registry.trunk.ref") == ref {
			exchange = s.span
			break
		}
	}
	if exchange == nil {
		return nil, nil
	}
	for _, s := range spans {
		if s.span.GetName() == sendMessageSpan && string(s.span.GetParentSpanId()) == string(exchange.GetSpanId()) {
			return exchange, s.span
		}
	}
	return exchange, nil
}

// TestTracingExportsARegistration: the real registry, given the standard OTEL_*
// variables, exports over OTLP/gRPC the spans of a registration (a discovery tick
// with FindBy under it, the REGISTER exchange of the trunk, its SendMessage client
// span as the exchange's child), and the trace context reaches the Requester in the
// call's metadata. No secret of the trunk is in any span.
func TestTracingExportsARegistration(t *testing.T) {
	recv, err := startReceiver(t, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK}},
		[]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "s3cret-Tr4ce")})
	reg, _ := registry(t, registryConfig(f.reqAddr, f.apiAddr, "startupSpread: 0s", "httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0"),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.addr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_SERVICE_NAME=", "OTEL_TRACES_EXPORTER=", "OTEL_SDK_DISABLED=", "OTEL_TRACES_SAMPLER=")
	reg.logEntry("tracing start line", 10*time.Second, "tracing on", map[string]string{"service": "registry", "exporter": "otlp grpc"})
	recs := waitRecords(t, f, "the REGISTER of alice", atLeast("alice", 1))

	spans := recv.wait(t, "the spans of one registration", 30*time.Second, func(s []receivedSpan) bool {
		x, send := exchangeOf(s, "t1")
		return x != nil && send != nil && len(named(s, "registry.discover")) > 0
	})
	x, send := exchangeOf(spans, "t1")
	for _, s := range spans {
		if s.service != "registry" {
			t.Errorf("span %s from service %q, want registry", s.span.GetName(), s.service)
		}
	}
	if send.GetKind() != tracev1.Span_SPAN_KIND_CLIENT || string(send.GetTraceId()) != string(x.GetTraceId()) {
		t.Errorf("SendMessage span: kind %v, trace %x; want a client span in the exchange's trace %x", send.GetKind(), send.GetTraceId(), x.GetTraceId())
	}
	for key, want := range map[string]string{
		"registry.aor": "sip:alice@sip.provider.net", "registry.target": "sip.provider.net:5060",
		"registry.state": "registered", "sip.response.code": "200", "registry.attempts": "1",
	} {
		if got := attrString(x.GetAttributes(), key); got != want {
			t.Errorf("exchange span %s = %q, want %q", key, got, want)
		}
	}
	discover := named(spans, "registry.discover")[0]
	if got := attrString(discover.GetAttributes(), "registry.trunks.seen"); got != "1" {
		t.Errorf("discovery span: registry.trunks.seen = %q, want 1", got)
	}
	findBy := false
	for _, s := range spans {
		if s.span.GetName() == "fonoster.routr.connect.trunks.v2beta1.Trunks/FindBy" && string(s.span.GetParentSpanId()) == string(discover.GetSpanId()) {
			findBy = true
		}
	}
	if !findBy {
		t.Error("no FindBy client span under a discovery span")
	}

	// The Requester got the exchange's trace: traceparent 00-<trace>-<SendMessage span>-01.
	want := fmt.Sprintf("00-%s-%s-01", hex.EncodeToString(x.GetTraceId()), hex.EncodeToString(send.GetSpanId()))
	found := false
	for _, r := range forKey(recs, "alice") {
		if r.Traceparent == want {
			found = true
		}
		if !strings.HasPrefix(r.Traceparent, "00-") {
			t.Errorf("REGISTER reached the Requester with traceparent %q", r.Traceparent)
		}
	}
	if !found {
		var got []string
		for _, r := range forKey(f.req.Requests(), "alice") {
			got = append(got, r.Traceparent)
		}
		t.Errorf("traceparents at the Requester %q, want one %q", got, want)
	}

	for _, s := range spans {
		for _, secret := range []string{"s3cret-Tr4ce", base64.StdEncoding.EncodeToString([]byte("alice:s3cret-Tr4ce"))} {
			for _, kv := range s.span.GetAttributes() {
				if strings.Contains(kv.GetValue().String(), secret) {
					t.Errorf("a secret reached span %s attribute %s", s.span.GetName(), kv.GetKey())
				}
			}
			for _, ev := range s.span.GetEvents() {
				for _, kv := range ev.GetAttributes() {
					if strings.Contains(kv.GetValue().String(), secret) {
						t.Errorf("a secret reached span %s event attribute %s", s.span.GetName(), kv.GetKey())
					}
				}
			}
			if strings.Contains(s.span.GetStatus().GetMessage(), secret) {
				t.Errorf("a secret reached span %s status", s.span.GetName())
			}
		}
	}
	if err := reg.stop(); err != nil {
		t.Errorf("registry exit: %v", err)
	}
}

func named(spans []receivedSpan, name string) []*tracev1.Span {
	var out []*tracev1.Span
	for _, s := range spans {
		if s.span.GetName() == name {
			out = append(out, s.span)
		}
	}
	return out
}

// TestTracingOffByDefault: with no OTEL_* variable the registry registers and
// refreshes as before, exports nothing (it does not even connect to the default OTLP
// endpoints, when this machine lets the test listen there), starts no tracing, and
// sends no trace context to the Requester.
func TestTracingOffByDefault(t *testing.T) {
	var defaults []*connCounter
	for _, addr := range []string{"127.0.0.1:4317", "127.0.0.1:4318"} {
		if c, err := countConns(t, addr); err == nil {
			defaults = append(defaults, c)
		} else {
			t.Logf("cannot listen on the default OTLP endpoint %s (%v): not watched", addr, err)
		}
	}
	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 4}},
		[]*trunksv2beta1.Trunk{trunk("t1", "sip.provider.net", "alice", "s3cret")})
	// Any OTEL_* variable of the test's own environment is emptied: none is set.
	reg, _ := registry(t, registryConfig(f.reqAddr, f.apiAddr, "startupSpread: 0s", "httpAddr: 127.0.0.1:0", "controlAddr: 127.0.0.1:0"),
		"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", "OTEL_TRACES_EXPORTER=", "OTEL_SDK_DISABLED=")
	recs := waitRecords(t, f, "a REGISTER and two refreshes of alice", atLeast("alice", 3))
	if err := reg.stop(); err != nil {
		t.Errorf("registry exit: %v", err)
	}
	for _, r := range forKey(recs, "alice") {
		if r.Traceparent != "" {
			t.Errorf("a REGISTER carried traceparent %q with tracing off", r.Traceparent)
		}
	}
	if strings.Contains(reg.output(), "tracing") {
		t.Errorf("the registry logged about tracing with none configured:\n%s", reg.output())
	}
	// The registry has exited (its last spans, had there been any, flushed).
	for _, c := range defaults {
		if n := c.count.Load(); n != 0 {
			t.Errorf("%d connections to the default OTLP endpoint %s", n, c.addr)
		}
	}
}

// connCounter counts the connections made to an address.
type connCounter struct {
	addr  string
	count atomic.Int64
}

// countConns listens on addr until the test ends and counts (and closes) every
// connection made to it.
func countConns(t *testing.T, addr string) (*connCounter, error) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = lis.Close() })
	c := &connCounter{addr: addr}
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			c.count.Add(1)
			_ = conn.Close()
		}
	}()
	return c, nil
}
