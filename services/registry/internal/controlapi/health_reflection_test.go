//lint:file-ignore SA1019 the reflection test calls the deprecated v1alpha service on purpose: grpcurl and older clients still use it.

package controlapi_test

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/controlapi"
)

// testHealth uses grpc-go's health client, without a token.
func testHealth(t *testing.T, e *env) {
	hc := grpc_health_v1.NewHealthClient(dialGRPC(t, e.addr, ""))
	check := func(service string) (grpc_health_v1.HealthCheckResponse_ServingStatus, error) {
		res, err := hc.Check(ctxFor(t), &grpc_health_v1.HealthCheckRequest{Service: service})
		return res.GetStatus(), err
	}
	serving, notServing := grpc_health_v1.HealthCheckResponse_SERVING, grpc_health_v1.HealthCheckResponse_NOT_SERVING
	for _, svc := range []string{"", registryv1connect.RegistrationServiceName} {
		if st, err := check(svc); err != nil || st != serving {
			t.Fatalf("check(%q) = %v, %v", svc, st, err)
		}
	}
	_, err := check("no.such.Service")
	wantCode(t, err, connect.CodeNotFound, "")

	// A store fault younger than the grace period is tolerated; an older one is not.
	e.fx.fault.Store(&storeFault{err: errors.New("redis: connection refused"), since: time.Now().Add(-time.Second)})
	if st, err := check(""); err != nil || st != serving {
		t.Fatalf("fresh fault: %v, %v", st, err)
	}
	e.fx.fault.Store(&storeFault{err: errors.New("redis: connection refused"), since: time.Now().Add(-controlapi.StoreFaultGrace - time.Minute)})
	for _, svc := range []string{"", registryv1connect.RegistrationServiceName} {
		if st, err := check(svc); err != nil || st != notServing {
			t.Fatalf("old fault: check(%q) = %v, %v", svc, st, err)
		}
	}
	e.fx.fault.Store(nil)
	if st, err := check(""); err != nil || st != serving {
		t.Fatalf("recovered: %v, %v", st, err)
	}
}

// testReflection lists services with grpc-go's reflection clients (v1 and v1alpha), without
// a token: every service served, the reflection services themselves too, as a grpc-go
// server lists them (what grpcurl list shows). It resolves the RegistrationService's
// file with its imports, and the reflection service's.
func testReflection(t *testing.T, e *env) {
	conn := dialGRPC(t, e.addr, "")
	want := []string{
		"grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection",
		registryv1connect.RegistrationServiceName,
	}

	v1, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil {
		t.Fatal(err)
	}
	res, err := v1.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("v1 services = %v, want %v", names, want)
	}
	if err := v1.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: registryv1connect.RegistrationServiceName},
	}); err != nil {
		t.Fatal(err)
	}
	res, err = v1.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.GetFileDescriptorResponse().GetFileDescriptorProto()); n < 2 {
		t.Fatalf("file containing the service: %d descriptors (%v)", n, res.GetErrorResponse())
	}
	for _, svc := range want[1:3] {
		if err := v1.Send(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc},
		}); err != nil {
			t.Fatal(err)
		}
		res, err = v1.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.GetFileDescriptorResponse().GetFileDescriptorProto()); n < 1 {
			t.Fatalf("file containing %s: none (%v)", svc, res.GetErrorResponse())
		}
	}
	if err := v1.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of v1 stream: %v", err)
	}

	// The v1alpha service is deprecated, but grpcurl and older clients still ask it.
	alpha, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := alpha.Send(&reflectionv1alpha.ServerReflectionRequest{
		MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil {
		t.Fatal(err)
	}
	ares, err := alpha.Recv()
	if err != nil {
		t.Fatal(err)
	}
	names = names[:0]
	for _, s := range ares.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("v1alpha services = %v, want %v", names, want)
	}
	_ = alpha.CloseSend()
}
