package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestTracingWanted(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_SERVICE_NAME": "reg", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "false"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
	} {
		if got := tracingWanted(envOf(tc.env)); got != tc.want {
			t.Errorf("tracingWanted(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

// restoreGlobals puts back the process's global tracer provider and propagator.
func restoreGlobals(t *testing.T) {
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
	})
}

// TestTracingOff: without OTEL_* variables there is no provider, no dial option, and
// the globals are left alone.
func TestTracingOff(t *testing.T) {
	restoreGlobals(t)
	before := otel.GetTracerProvider()
	tr, err := setupTracing(context.Background(), envOf(nil), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if tr.provider != nil || tr.sdk != nil || tr.dial() != nil {
		t.Errorf("tracing on without configuration: %+v", tr)
	}
	if otel.GetTracerProvider() != before {
		t.Error("the global tracer provider changed")
	}
	tr.shutdown(slog.New(slog.DiscardHandler))
}

// TestTracingOn: an OTLP endpoint turns tracing on, with W3C propagation as the
// global propagator and service.name "registry" by default; OTEL_SERVICE_NAME wins.
func TestTracingOn(t *testing.T) {
	restoreGlobals(t)
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tr, err := setupTracing(context.Background(), envOf(env), log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.shutdown(log)
	if _, ok := tr.provider.(*sdktrace.TracerProvider); !ok || len(tr.dial()) != 1 {
		t.Fatalf("tracing off with an endpoint: %+v", tr)
	}
	if got := otel.GetTextMapPropagator().Fields(); !strings.Contains(strings.Join(got, ","), "traceparent") {
		t.Errorf("global propagator fields %v, want traceparent", got)
	}
	if !strings.Contains(logs.String(), "service=registry") || !strings.Contains(logs.String(), `exporter="otlp grpc"`) {
		t.Errorf("start line %q", logs.String())
	}

	t.Setenv("OTEL_SERVICE_NAME", "registry-eu")
	logs.Reset()
	tr2, err := setupTracing(context.Background(), envOf(env), log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.shutdown(log)
	if !strings.Contains(logs.String(), "service=registry-eu") {
		t.Errorf("start line %q, want OTEL_SERVICE_NAME's name", logs.String())
	}
}

// TestTracingBadProtocol: an unknown OTLP protocol stops the start with a clear error.
func TestTracingBadProtocol(t *testing.T) {
	restoreGlobals(t)
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}
	for k, v := range env {
		t.Setenv(k, v)
	}
	if _, err := setupTracing(context.Background(), envOf(env), slog.New(slog.DiscardHandler)); err == nil || !strings.HasPrefix(err.Error(), "tracing: ") {
		t.Errorf("err = %v, want a tracing error", err)
	}
}
