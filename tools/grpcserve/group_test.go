package grpcserve_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"sipreg.dev/tools/grpcserve"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// check makes one health call to addr, waiting for the server to be ready.
func check(t *testing.T, addr string) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("Check(%s) = %v", addr, err)
	}
}

func TestGroupStopsEveryServerAndServesAgain(t *testing.T) {
	var g grpcserve.Group
	register := func(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, health.NewServer()) }
	for round := range 2 {
		lis := []net.Listener{listen(t), listen(t)}
		done := make(chan error, len(lis))
		for _, l := range lis {
			go func() { done <- g.Serve(l, register, grpc.MaxRecvMsgSize(1<<20)) }()
		}
		for _, l := range lis {
			check(t, l.Addr().String())
		}
		g.Stop()
		for range lis {
			if err := <-done; err != nil {
				t.Errorf("round %d: Serve() = %v after Stop, want nil", round, err)
			}
		}
	}
	g.Stop() // nothing running: a no-op
}
