// Package upstream holds thin adapters over the generated clients of Routr's Trunks API
// and Requester: connection options, deadlines and error classification, nothing more.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"sipreg.dev/services/registry/internal/grpclite"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// MaxAPIAnswer bounds one FindBy answer: 100,000 trunks take about 20 MiB, far above
// gRPC's default 4 MiB receive limit.
const MaxAPIAnswer = 512 << 20

// Trunks finds the trunks to register. It answers the FindByResponse's wire bytes,
// undecoded: the engine recognises an unchanged answer (the usual discovery tick) by
// its hash, without decoding 100,000 trunks, and decodes a new one with
// DecodeFindBy, which leaves out the items it cannot decode.
type Trunks interface {
	FindRegisteringRaw(ctx context.Context) ([]byte, error)
}

// SummingTrunks is a Trunks that hashes an answer as it arrives (xxhash, the same sum as
// xxhash.Sum64 of its bytes) and, when the sum is known (the answer is byte for byte the
// last one applied), answers it without its bytes: a 100,000-trunk answer is then never
// copied into one piece (about 20 MiB a discovery tick, and the collection it brings).
type SummingTrunks interface {
	Trunks
	// FindRegisteringSum answers the FindByResponse's sum and, unless the sum is
	// known (and not 0), its wire bytes.
	FindRegisteringSum(ctx context.Context, known uint64) (raw []byte, sum uint64, err error)
}

// Requester sends one SIP request through Routr's Requester. req is only valid until
// SendMessage returns (its messages serve the next REGISTER, exchange.Send): an
// implementation that keeps it keeps a clone (proto.Clone).
type Requester interface {
	SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error)
}

// API is the Trunks client over gRPC.
type API struct {
	conn    *grpc.ClientConn
	timeout time.Duration
}

// DialOption configures a connection made by DialAPI or DialRequester.
type DialOption func(*dialConfig)

type dialConfig struct {
	grpc []grpc.DialOption
	// grpcGo: the Requester is called through grpc-go (it traces), not grpclite.
	grpcGo bool
	// gate, when set, refuses the Requester's writes while it answers false.
	gate func() bool
}

// WithTracing traces every call on the connection with OpenTelemetry (otelgrpc): a
// client span per call, a child of the span in the call's context, made by tp, and the
// trace context sent in the call's metadata by prop (W3C traceparent with
// propagation.TraceContext). Without it the connection carries no instrumentation at
// all. Only the method, status and peer are recorded: no message content.
func WithTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) DialOption {
	return func(c *dialConfig) {
		c.grpcGo = true // grpclite has no stats handlers
		c.grpc = append(c.grpc, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp),
			otelgrpc.WithPropagators(prop),
			// Tracing only: the registry's metrics are its own (Prometheus).
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		)))
	}
}

// dial makes a lazy connection to addr with the options every client uses, then
// opts'.
func dial(addr string, opts []DialOption, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	var c dialConfig
	for _, o := range opts {
		o(&c)
	}
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, extra...)
	return grpc.NewClient(addr, append(all, c.grpc...)...)
}

// DialAPI connects (lazily) to Routr's API server at addr.
func DialAPI(addr string, timeout time.Duration, opts ...DialOption) (*API, error) {
	// No buffer pool: a FindBy answer is read in 16 KiB pieces from the pool and
	// copied out into one (rawCodec); pooled, the pieces (12 MB at 100,000 trunks)
	// would stay reachable through the next garbage collection, which counts them as
	// live and sets the heap's next goal twice as high.
	conn, err := dial(addr, opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxAPIAnswer)),
		experimental.WithBufferPool(mem.NopBufferPool{}))
	if err != nil {
		return nil, fmt.Errorf("api %s: %w", addr, err)
	}
	return &API{conn: conn, timeout: timeout}, nil
}

var _ SummingTrunks = (*API)(nil)

// FindRegisteringRaw calls Trunks/FindBy(sendRegister, true) within the timeout and
// answers the FindByResponse's wire bytes, undecoded (see Trunks).
func (a *API) FindRegisteringRaw(ctx context.Context) ([]byte, error) {
	raw, _, err := a.FindRegisteringSum(ctx, 0)
	return raw, err
}

// FindRegisteringSum is FindRegisteringRaw with the answer's sum, and without its bytes
// when the sum is known (see SummingTrunks).
func (a *API) FindRegisteringSum(ctx context.Context, known uint64) ([]byte, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	raw := rawAnswer{known: known}
	err := a.conn.Invoke(ctx, trunksv2beta1.Trunks_FindBy_FullMethodName,
		&trunksv2beta1.FindByRequest{FieldName: "sendRegister", FieldValue: "true"}, &raw,
		grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return nil, 0, fmt.Errorf("trunks findBy: %w", err)
	}
	return raw.b, raw.sum, nil
}

// rawAnswer receives an answer's bytes and sum through rawCodec; the bytes are left out
// when the sum is known.
type rawAnswer struct {
	known, sum uint64
	b          []byte
}

// rawCodec marshals requests as protobuf and keeps answers as bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rawAnswer)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	// gRPC hands the answer over in the pieces it was read into: they are hashed as
	// they are, and copied into one only when needed.
	d := xxhash.New()
	for _, b := range data {
		_, _ = d.Write(b.ReadOnlyData())
	}
	r.sum = d.Sum64()
	if r.known == 0 || r.sum != r.known {
		r.b = data.Materialize()
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Close closes the connection.
func (a *API) Close() error { return a.conn.Close() }

// RequesterClient is the Requester client over gRPC: grpclite's lean unary calls, or
// grpc-go's when the calls are traced (WithTracing).
type RequesterClient struct {
	conn    *grpc.ClientConn // grpc-go's connection; nil on grpclite
	lean    *grpclite.Client
	send    *grpclite.Method
	timeout time.Duration
}

// DialRequester connects (lazily) to Routr's Requester at addr. timeout bounds each
// call: it must be longer than the Requester's 32 s SIP transaction timeout.
//
// Calls go through grpclite (one HTTP/2 connection, a fraction of grpc-go's CPU and
// allocations per call: see its package documentation), unless WithTracing asks for
// grpc-go's stats handlers.
func DialRequester(addr string, timeout time.Duration, opts ...DialOption) (*RequesterClient, error) {
	var c dialConfig
	for _, o := range opts {
		o(&c)
	}
	if !c.grpcGo {
		lean := grpclite.New(addr, grpclite.Options{Timeout: timeout, Dial: gatedDial(c.gate), Marshal: marshalRequestTo})
		return &RequesterClient{lean: lean, send: lean.Method(requesterv2beta1.Requester_SendMessage_FullMethodName), timeout: timeout}, nil
	}
	conn, err := dial(addr, opts)
	if err != nil {
		return nil, fmt.Errorf("requester %s: %w", addr, err)
	}
	return &RequesterClient{conn: conn, timeout: timeout}, nil
}

// SendMessage sends req within the timeout. The request goes as the generated client
// sends it (the same bytes, the same content-type); the answer is decoded leanly: its
// message holds only what sipmsg.Read and sipauth.ChallengeFrom read, and reads the
// same to them as the whole message would (see leanAnswer). Nothing of req is kept once
// it returns: gRPC marshals req before sending, and a transparent retry replays those
// bytes within the same Invoke; besides the codec, only the stats handlers see req
// (otelgrpc's ignores message payloads), and they too within the call.
func (r *RequesterClient) SendMessage(ctx context.Context, req *requesterv2beta1.SendMessageRequest) (*requesterv2beta1.SendMessageResponse, error) {
	a := new(leanAnswer)
	var err error
	if r.send != nil {
		// grpclite bounds the call by the timeout itself, without a timer per call.
		err = r.send.Call(ctx, req, a)
	} else {
		ctx, cancel := context.WithTimeout(ctx, r.timeout)
		err = r.conn.Invoke(ctx, requesterv2beta1.Requester_SendMessage_FullMethodName, req, a, sendMessageOptions...)
		cancel()
	}
	if err != nil {
		return nil, fmt.Errorf("requester sendMessage: %w", err)
	}
	return &a.resp, nil
}

// sendMessageOptions are SendMessage's call options, made once: built per call, the
// slice and the boxed codec option cost two allocations a call. gRPC only reads them.
var sendMessageOptions = []grpc.CallOption{grpc.StaticMethod(), grpc.ForceCodecV2(answerCodec{})}

// Close closes the connection.
func (r *RequesterClient) Close() error {
	if r.lean != nil {
		return r.lean.Close()
	}
	return r.conn.Close()
}

// Transient reports whether a call error is worth retrying with backoff (unavailable,
// deadline, resource exhausted, aborted, internal or unknown transport trouble).
// InvalidArgument, Unimplemented and the like are configuration problems, but are
// retried too, just as slowly: a registry never gives up on a wanted trunk.
func Transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Internal, codes.Unknown, codes.Canceled:
		return true
	}
	return false
}
