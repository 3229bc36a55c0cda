package grpcserve

import (
	"net"
	"sync"

	"google.golang.org/grpc"
)

// Group serves gRPC on any number of listeners, each with a grpc.Server of its own, and
// stops every running one at once. The zero value is ready to use; Serve may be called
// again after Stop. Its methods are safe for concurrent use.
type Group struct {
	mu      sync.Mutex
	servers map[*grpc.Server]struct{} // the servers whose Serve has not returned
}

// Serve creates a grpc.Server with opts, lets register add services to it and serves
// lis until Stop. It returns what grpc.Server.Serve returns: nil after Stop.
func (g *Group) Serve(lis net.Listener, register func(*grpc.Server), opts ...grpc.ServerOption) error {
	gs := grpc.NewServer(opts...)
	register(gs)
	g.mu.Lock()
	if g.servers == nil {
		g.servers = make(map[*grpc.Server]struct{})
	}
	g.servers[gs] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.servers, gs)
		g.mu.Unlock()
	}()
	return gs.Serve(lis)
}

// Stop stops every server running at the call (grpc.Server.Stop): it closes their
// listeners and connections at once, so calls in flight fail on the client side with
// Unavailable, and their Serve calls return.
func (g *Group) Stop() {
	g.mu.Lock()
	running := make([]*grpc.Server, 0, len(g.servers))
	for gs := range g.servers {
		running = append(running, gs)
	}
	g.mu.Unlock()
	for _, gs := range running {
		gs.Stop()
	}
}
