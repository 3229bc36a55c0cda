package grpclite

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
)

// traffic makes calls from n goroutines until stop is closed, counting successes in
// ok and failures in failed, and sending the failures whose code is not allowed to bad.
type traffic struct {
	ok, failed atomic.Int64
	bad        chan error
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startTraffic(t *testing.T, m *Method, n int, allowed ...codes.Code) *traffic {
	tr := &traffic{bad: make(chan error, 100), stop: make(chan struct{})}
	for g := range n {
		tr.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				id := strconv.Itoa(g) + "/" + strconv.Itoa(i)
				got, err := do(context.Background(), m, id)
				switch {
				case err == nil && got == id:
					tr.ok.Add(1)
					continue
				case err == nil:
					err = status.Errorf(codes.Internal, "answer %q for call %q", got, id)
				case slicesContains(allowed, status.Code(err)):
					tr.failed.Add(1)
					continue
				}
				select {
				case tr.bad <- err:
				default:
				}
			}
		})
	}
	t.Cleanup(tr.end)
	return tr
}

func (tr *traffic) end() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

func (tr *traffic) check(t *testing.T) {
	t.Helper()
	tr.end()
	close(tr.bad)
	for err := range tr.bad {
		t.Error(err)
	}
}

func slicesContains(cs []codes.Code, c codes.Code) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func TestGRPCGoStoppedAndRestarted(t *testing.T) {
	addr, g := serve(t, &requester{answer: echo})
	c, _ := liteClient(t, addr, Options{Timeout: 10 * time.Second, MaxBackoff: 50 * time.Millisecond})
	m := sendMessage(c)
	tr := startTraffic(t, m, 8, codes.Unavailable)
	eventually(t, "calls succeeding", func() bool { return tr.ok.Load() >= 200 })
	g.Stop()
	failed := tr.failed.Load()
	eventually(t, "calls failing", func() bool { return tr.failed.Load() >= failed+200 })

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g2 := grpc.NewServer()
	requesterv2beta1.RegisterRequesterServer(g2, &requester{answer: echo})
	go func() { _ = g2.Serve(lis) }()
	t.Cleanup(g2.Stop)
	ok := tr.ok.Load()
	eventually(t, "calls succeeding again", func() bool { return tr.ok.Load() >= ok+200 })
	tr.check(t)
	// The server is up: every call succeeds.
	for i := range 100 {
		if _, err := do(context.Background(), m, "after"); err != nil {
			t.Fatalf("call %d after the restart: %v", i, err)
		}
	}
}

func TestGRPCGoMaxConnectionAge(t *testing.T) {
	addr, _ := serve(t, &requester{answer: echo},
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 30 * time.Millisecond}))
	c, dials := liteClient(t, addr, Options{Timeout: 10 * time.Second})
	tr := startTraffic(t, sendMessage(c), 16) // no failure allowed
	eventually(t, "calls over several connections", func() bool { return tr.ok.Load() >= 3000 && dials.Load() >= 5 })
	tr.check(t)
}

func TestGRPCGoManyCallsFewStreams(t *testing.T) {
	addr, _ := serve(t, &requester{answer: echo}, grpc.MaxConcurrentStreams(4))
	c, dials := liteClient(t, addr, Options{Timeout: 30 * time.Second})
	m := sendMessage(c)
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			id := "call-" + strconv.Itoa(i)
			if got, err := do(context.Background(), m, id); err != nil || got != id {
				t.Errorf("%s: %q, %v", id, got, err)
			}
		})
	}
	wg.Wait()
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

func TestGRPCGoLargeMessages(t *testing.T) {
	// Beyond grpc-go's initial windows (64 KiB) both ways, and its frame size.
	addr, _ := serve(t, &requester{answer: echo})
	c, _ := liteClient(t, addr, Options{Timeout: 10 * time.Second, MaxRecvSize: 1 << 20})
	m := sendMessage(c)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := strings.Repeat(strconv.Itoa(i), 300<<10)
			if got, err := do(context.Background(), m, id); err != nil || got != id {
				t.Errorf("call %d: %d bytes, %v", i, len(got), err)
			}
		})
	}
	wg.Wait()
	_, err := do(context.Background(), m, strings.Repeat("x", 2<<20))
	wantCode(t, err, codes.ResourceExhausted)
	if got, err := do(context.Background(), m, "small"); err != nil || got != "small" {
		t.Fatalf("after the large answer: %q, %v", got, err)
	}
}

func TestGRPCGoMaxConnectionAgeFewStreams(t *testing.T) {
	// Calls wait for a stream while connections go away under them.
	addr, _ := serve(t, &requester{answer: echo}, grpc.MaxConcurrentStreams(4),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 30 * time.Millisecond}))
	c, dials := liteClient(t, addr, Options{Timeout: 10 * time.Second})
	tr := startTraffic(t, sendMessage(c), 200) // no failure allowed
	eventually(t, "calls over several connections", func() bool { return tr.ok.Load() >= 3000 && dials.Load() >= 5 })
	tr.check(t)
}
