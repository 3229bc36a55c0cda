// Package controlapi serves the registry's control API (sipreg.registry.v1.RegistrationService)
// with the Connect, gRPC and gRPC-Web protocols on one mux, next to gRPC server reflection
// (v1 and v1alpha) and the gRPC health service. It is the API edge: the only place where
// engine errors become connect errors, and where the REGISTER shown by ExplainRegistration
// is redacted once more before it leaves the process.
//
// controlapi.go builds the handler; auth.go checks the bearer token; the
// RegistrationService is service.go (List, Get, Explain), force.go (ForceRegister),
// forward.go (calls forwarded to the other replicas) and watch.go (WatchRegistrations);
// convert.go maps records, states, page tokens and errors to the API.
package controlapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

// Engine is what the control API needs from the registration engine. *reconcile.Reconciler
// satisfies it; tests use a fake.
type Engine interface {
	// Records returns every registration known, in no particular order, in a slice of
	// its own that the caller may reorder and filter in place.
	Records() []registration.Record
	// Page is the keyset page of Records: up to size records whose trunk ref sorts
	// after after and whose state keep accepts (nil: any), by ref, and whether more
	// follow (registration.PageOf, without copying what the page leaves out).
	Page(after string, keep func(registration.State) bool, size int) ([]registration.Record, bool)
	// Record returns one trunk's registration.
	Record(ref string) (registration.Record, bool)
	// Refs lists the trunks that are wanted now.
	Refs() []string
	// Force registers ref now and waits for the outcome (or ctx).
	Force(ctx context.Context, ref string) (registration.Record, error)
	// Subscribe streams every change until the subscription is closed. Its Next fails
	// with watch.ErrWatcherTooSlow once the reader fell more than a bounded backlog
	// behind, with reconcile.ErrStopping when the registry stops, and with ctx's error.
	Subscribe() *watch.Subscription
	// Explain describes the next action for ref, with the REGISTER it would send.
	Explain(ref string) (reconcile.Explanation, error)
	// StoreFault returns the current store error and since when (nil when healthy).
	StoreFault() (time.Time, error)
	// Peers lists the other live replicas (none with one replica).
	Peers() []ownership.Peer
}

var _ Engine = (*reconcile.Reconciler)(nil)

// DefaultForceTimeout bounds a ForceRegister call when Options.ForceTimeout is zero.
const DefaultForceTimeout = 45 * time.Second

// StoreFaultGrace is how long the store may be unreachable before the health service
// reports NOT_SERVING (the same grace as /healthz).
const StoreFaultGrace = 30 * time.Second

// DefaultMaxWatchStreams caps the open WatchRegistrations streams when
// Options.MaxWatchStreams is zero (the default of spec.maxWatchStreams).
const DefaultMaxWatchStreams = 256

// DefaultWatchDropGrace is Options.WatchDropGrace when zero.
const DefaultWatchDropGrace = 10 * time.Second

// maxRequestBytes bounds every request message; the largest legitimate one is a few
// hundred bytes.
const maxRequestBytes = 1 << 20

// Options configures NewHandler.
type Options struct {
	// Token, when set, is the bearer token every RegistrationService call must carry
	// (Authorization: Bearer <token>). Health and reflection stay open.
	Token string
	// Logger receives failed forced registrations and refused calls; never the token.
	Logger *slog.Logger
	// ForceTimeout bounds one ForceRegister call (all trunks together when all is set);
	// DefaultForceTimeout when zero or negative.
	ForceTimeout time.Duration
	// MaxWatchStreams caps the WatchRegistrations streams open at once; one more is
	// refused with ResourceExhausted. DefaultMaxWatchStreams when zero or negative.
	MaxWatchStreams int
	// WatchDropGrace is how long a WatchRegistrations client dropped as too slow has to
	// read what was already sent (then ResourceExhausted) before its stream is reset: a
	// client that stopped reading holds no stream slot and no goroutine past it.
	// DefaultWatchDropGrace when zero or negative.
	WatchDropGrace time.Duration
	// Observer is told about refused calls and open streams (metrics); nil: nobody.
	Observer Observer
	// TracerProvider, when set, traces every RegistrationService call with
	// OpenTelemetry (otelconnect): one server span per call, refused ones included.
	// A caller's trace context is linked, not continued. Health and reflection are
	// not traced. nil: no instrumentation at all.
	TracerProvider trace.TracerProvider
	// Propagator reads a caller's trace context (nil: W3C trace context and baggage).
	Propagator propagation.TextMapPropagator
}

// Observer is told what the control API does, for metrics; *metrics.Metrics satisfies
// it. Its methods are called concurrently.
type Observer interface {
	// ControlAuthFailed counts one call refused for a missing or invalid bearer token.
	ControlAuthFailed()
	// WatchStreams adds delta (1 when a WatchRegistrations stream opens, -1 when it
	// ends) to the open streams.
	WatchStreams(delta int)
}

// nopObserver is the Observer when none is given.
type nopObserver struct{}

func (nopObserver) ControlAuthFailed() {}
func (nopObserver) WatchStreams(int)   {}

// NewHandler returns one handler serving the RegistrationService (Connect, gRPC and
// gRPC-Web), gRPC reflection v1 and v1alpha, and gRPC health for engine.
func NewHandler(engine Engine, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ForceTimeout <= 0 {
		opts.ForceTimeout = DefaultForceTimeout
	}
	if opts.MaxWatchStreams <= 0 {
		opts.MaxWatchStreams = DefaultMaxWatchStreams
	}
	if opts.WatchDropGrace <= 0 {
		opts.WatchDropGrace = DefaultWatchDropGrace
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	limit := connect.WithReadMaxBytes(maxRequestBytes)
	svcOpts := []connect.HandlerOption{limit}
	if opts.TracerProvider != nil {
		// Outermost, so that calls the bearer check refuses are traced too.
		if ic, err := newTracing(opts); err != nil {
			opts.Logger.Error("control api calls are not traced", "err", err)
		} else {
			svcOpts = append(svcOpts, connect.WithInterceptors(ic))
		}
	}
	if opts.Token != "" {
		svcOpts = append(svcOpts, connect.WithInterceptors(newBearerAuth(opts.Token, opts.Logger, opts.Observer)))
	}

	mux := http.NewServeMux()
	path, svc := registryv1connect.NewRegistrationServiceHandler(&service{
		engine:        engine,
		log:           opts.Logger,
		forceTimeout:  opts.ForceTimeout,
		forwardClient: &http.Client{Timeout: opts.ForceTimeout + 5*time.Second},
		watchers:      streamLimit{max: int64(opts.MaxWatchStreams)},
		dropGrace:     opts.WatchDropGrace,
		obs:           opts.Observer,
	}, svcOpts...)
	mux.Handle(path, withResponseWriter(svc))

	// Every service served here is listed, the reflection services too (as grpc-go
	// servers list them); grpcreflect resolves their descriptors itself.
	reflector := grpcreflect.NewStaticReflector(
		registryv1connect.RegistrationServiceName,
		grpchealth.HealthV1ServiceName,
		grpcreflect.ReflectV1ServiceName,
		grpcreflect.ReflectV1AlphaServiceName,
	)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, limit))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, limit))
	mux.Handle(grpchealth.NewHandler(healthChecker{engine: engine}, limit))
	return mux
}

// newTracing is the otelconnect interceptor of opts' TracerProvider: spans only, no
// metrics (the registry's metrics are its own).
func newTracing(opts Options) (connect.Interceptor, error) {
	prop := opts.Propagator
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	ic, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(opts.TracerProvider),
		otelconnect.WithPropagator(prop),
		otelconnect.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
	if err != nil {
		return nil, fmt.Errorf("otelconnect: %w", err)
	}
	return ic, nil
}

// healthChecker reports SERVING for the process and the RegistrationService, and
// NOT_SERVING once the store has been unreachable for longer than StoreFaultGrace.
type healthChecker struct {
	engine Engine
}

func (c healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "", registryv1connect.RegistrationServiceName:
	default:
		return nil, connect.NewError(connect.CodeNotFound, errUnknownService(req.Service))
	}
	if since, err := c.engine.StoreFault(); err != nil && time.Since(since) > StoreFaultGrace {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// Server limits. WriteTimeout stays 0: net/http applies it to the whole response (on
// HTTP/1.1 and HTTP/2 alike), so any value would cut every WatchRegistrations stream at
// that age. Stuck or dead HTTP/2 peers are caught by HTTP2Config instead.
const (
	readHeaderTimeout  = 5 * time.Second
	readTimeout        = 30 * time.Second
	idleTimeout        = 2 * time.Minute
	h2PingInterval     = 30 * time.Second
	h2PingTimeout      = 15 * time.Second
	h2WriteByteTimeout = 30 * time.Second
	maxHeaderBytes     = 64 << 10
)

// NewServer returns an http.Server for h on addr that speaks HTTP/1.1 and unencrypted
// HTTP/2 (prior knowledge, as gRPC clients use it), so Connect, gRPC and gRPC-Web all
// work in plain text.
//
// Timeouts: ReadHeaderTimeout 5s; ReadTimeout 30s for a request's headers and body (a
// request here is one small message; net/http lifts the deadline once the body is read,
// so it never touches a long response); IdleTimeout 2m. WriteTimeout is 0 on purpose: it
// is a deadline for the whole response, and WatchRegistrations streams for as long as
// the client stays. Unary calls end on their own (ForceRegister within its ForceTimeout).
// On HTTP/2 a dead peer is found by pings (sent after 30s of silence, answered within
// 15s) and a stalled one by a 30s per-write progress limit (WriteByteTimeout); on
// HTTP/1.1 a watcher that vanished is noticed by the connection's read side (TCP
// keep-alive, on by default for accepted connections).
func NewServer(addr string, h http.Handler) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      0, // see above: any value would end every Watch stream.
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout:  h2PingInterval,
			PingTimeout:      h2PingTimeout,
			WriteByteTimeout: h2WriteByteTimeout,
		},
	}
}
