package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/services/registry/internal/upstream"
)

// defaultServiceName is service.name unless OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const defaultServiceName = "registry"

// tracingShutdownTimeout bounds the export of the last spans at exit.
const tracingShutdownTimeout = 5 * time.Second

// tracing is the process's OpenTelemetry tracing, configured the standard way, by the
// OTEL_* environment. It is off unless an exporter is asked for:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, or
// OTEL_TRACES_EXPORTER names one (otlp, console; none keeps it off), and
// OTEL_SDK_DISABLED is not true. Off, there is no tracer provider at all: no exporter,
// no goroutine, and the engine and the gRPC clients carry no instrumentation.
//
// On, spans go through a batch span processor to the exporter autoexport makes from
// the environment (OTLP over grpc or http/protobuf, per OTEL_EXPORTER_OTLP_PROTOCOL or
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, default http/protobuf; endpoint, headers,
// timeout and TLS from the usual OTEL_EXPORTER_OTLP_* variables). The sampler comes
// from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on),
// the batching from OTEL_BSP_*, the resource from OTEL_SERVICE_NAME (default
// "registry") and OTEL_RESOURCE_ATTRIBUTES. W3C trace context and baggage are the
// propagators, so a REGISTER's trace continues in the Requester.
type tracing struct {
	// provider makes the spans; nil when tracing is off.
	provider trace.TracerProvider
	// propagator writes the trace context into outgoing calls' metadata.
	propagator propagation.TextMapPropagator
	// sdk is provider's SDK, to flush and stop at exit; nil when off.
	sdk *sdktrace.TracerProvider
}

// tracingWanted reports whether the environment asks for traces to be exported.
func tracingWanted(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" {
		return exp != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// setupTracing starts tracing when the environment asks for it (getenv is os.Getenv in
// the service; the exporter and the SDK read the process environment themselves).
// It also makes the provider and propagator the process's global ones. Its error is an
// exporter the environment names but that cannot be made (an unknown protocol, say).
func setupTracing(ctx context.Context, getenv func(string) string, log *slog.Logger) (*tracing, error) {
	if !tracingWanted(getenv) {
		return &tracing{}, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(defaultServiceName), semconv.ServiceVersion(version)),
		resource.WithFromEnv())
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: what could be read is kept.
		log.Warn("tracing: resource attributes partly unusable", "err", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	otel.SetErrorHandler(exportErrors(log))
	service := defaultServiceName
	for _, kv := range res.Attributes() {
		if kv.Key == semconv.ServiceNameKey {
			service = kv.Value.AsString()
		}
	}
	log.Info("tracing on", "service", service, "exporter", exporterName(getenv))
	return &tracing{provider: tp, propagator: prop, sdk: tp}, nil
}

// exporterName names the exporter in use, for the start line (never an endpoint's
// credentials or headers).
func exporterName(getenv func(string) string) string {
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" && exp != "otlp" {
		return exp
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto == "" {
		proto = "http/protobuf"
	}
	return "otlp " + proto
}

// exportErrors logs the SDK's errors (a collector that cannot be reached, mostly): the
// first at warn, later ones at debug, so an outage does not flood the log.
func exportErrors(log *slog.Logger) otel.ErrorHandler {
	var warned atomic.Bool
	return otel.ErrorHandlerFunc(func(err error) {
		if warned.CompareAndSwap(false, true) {
			log.Warn("tracing: spans could not be exported (later failures are logged at debug)", "err", err)
			return
		}
		log.Debug("tracing: spans could not be exported", "err", err)
	})
}

// dial is the upstream option that traces the gRPC clients, none when off.
func (t *tracing) dial() []upstream.DialOption {
	if t.provider == nil {
		return nil
	}
	return []upstream.DialOption{upstream.WithTracing(t.provider, t.propagator)}
}

// shutdown exports the spans still queued and stops the exporter (bounded).
func (t *tracing) shutdown(log *slog.Logger) {
	if t.sdk == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if err := t.sdk.Shutdown(ctx); err != nil {
		log.Warn("tracing: the last spans may be lost", "err", err)
	}
}
