package fakerequester_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	requesterv2beta1 "sipreg.dev/gen/pb/fonoster/routr/requester/v2beta1"
	"sipreg.dev/tools/fakerequester"
)

// TestArrivalsInArrivalOrder: a slow answer arrives first and is answered last;
// Arrivals lists it first (Seq 1), while it is in flight as well as after, and
// Requests lists it last.
func TestArrivalsInArrivalOrder(t *testing.T) {
	s := fakerequester.New(fakerequester.Options{Script: fakerequester.Script{
		Trunks: map[string]fakerequester.Behaviour{"slow": {Kind: fakerequester.KindOK, Delay: time.Hour}},
	}})
	c := start(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	slowDone := make(chan error, 1)
	go func() {
		_, err := c.SendMessage(ctx, reg{user: "slow", expires: 60}.request())
		slowDone <- err
	}()
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	if err := s.WaitArrivals(wctx, func(a []fakerequester.Recorded) bool { return len(a) == 1 }); err != nil {
		t.Fatal(err)
	}
	if a := s.Arrivals(); a[0].Seq != 1 || a[0].Key != "slow" || a[0].Resp != nil || a[0].Err != nil {
		t.Fatalf("in flight: %+v, want Seq 1, key slow, no answer yet", a[0])
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("%d answered calls while the only one is in flight", n)
	}
	if _, err := c.SendMessage(t.Context(), reg{user: "fast", expires: 60}.request()); err != nil {
		t.Fatal(err)
	}
	cancel() // the slow call ends with the client's context
	<-slowDone
	if err := s.WaitArrivals(wctx, func(a []fakerequester.Recorded) bool { return len(a) == 2 && a[0].Err != nil }); err != nil {
		t.Fatal(err)
	}
	a := s.Arrivals()
	if a[0].Key != "slow" || a[0].Seq != 1 || a[1].Key != "fast" || a[1].Seq != 2 || a[1].Resp == nil {
		t.Errorf("arrivals %v/%d, %v/%d: want slow/1 then fast/2", a[0].Key, a[0].Seq, a[1].Key, a[1].Seq)
	}
	r := s.Requests()
	if len(r) != 2 || r[0].Key != "fast" || r[1].Key != "slow" || r[1].Seq != 1 {
		t.Errorf("answered order: %+v", r)
	}
}

// TestLocalNamesTheListener: one Server on two listeners; each call's Local is the
// listener it came in on, and the record file keeps Seq and Local.
func TestLocalNamesTheListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	s := fakerequester.New(fakerequester.Options{RecordFile: path})
	var addrs []string
	for range 2 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, lis.Addr().String())
		go func() { _ = s.Serve(lis) }()
	}
	t.Cleanup(func() { _ = s.Close() })
	for i, addr := range addrs {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		user := []string{"alice", "bob"}[i]
		if _, err := requesterv2beta1.NewRequesterClient(cc).SendMessage(t.Context(), reg{user: user, expires: 60}.request()); err != nil {
			t.Fatal(err)
		}
	}
	a := s.Arrivals()
	if len(a) != 2 || a[0].Local != addrs[0] || a[1].Local != addrs[1] {
		t.Fatalf("arrivals %+v: want Local %v in order", a, addrs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := fakerequester.ReadRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Seq != a[i].Seq || got[i].Local != a[i].Local {
			t.Errorf("record %d: file seq %d local %s, memory seq %d local %s", i, got[i].Seq, got[i].Local, a[i].Seq, a[i].Local)
		}
	}
}
