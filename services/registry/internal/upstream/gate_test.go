package upstream

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// TestWriteGate: while the gate is closed nothing reaches the server (the call fails);
// once it opens again, calls go through on a new connection.
func TestWriteGate(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted, bytesIn atomic.Int64
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					bytesIn.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	defer lis.Close()
	var open atomic.Bool
	req, err := DialRequester(lis.Addr().String(), time.Second, WithWriteGate(open.Load))
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := req.SendMessage(ctx, &requesterv2beta1.SendMessageRequest{Target: "x:5060"}); err == nil {
		t.Fatal("a call went through a closed gate")
	}
	if n := bytesIn.Load(); n != 0 {
		t.Fatalf("%d bytes reached the server through a closed gate", n)
	}
	open.Store(true)
	// The channel reconnects after a short backoff; poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for bytesIn.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing reached the server once the gate opened")
		}
		ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, _ = req.SendMessage(ctx2, &requesterv2beta1.SendMessageRequest{Target: "x:5060"})
		cancel2()
	}
}
