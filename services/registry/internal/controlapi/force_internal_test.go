package controlapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
	"sipreg.dev/gen/pb/sipreg/registry/v1/registryv1connect"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/reconcile"
	"sipreg.dev/services/registry/internal/registration"
)

// stubEngine implements only what a test sets; anything else panics.
type stubEngine struct {
	Engine
	refs   func() []string
	force  func(ctx context.Context, ref string) (registration.Record, error)
	record func(ref string) (registration.Record, bool)
	// peers and records: several replicas (ForceRegister all).
	peers   []ownership.Peer
	records []registration.Record
}

func (s *stubEngine) Refs() []string          { return s.refs() }
func (s *stubEngine) Peers() []ownership.Peer { return s.peers }
func (s *stubEngine) Records() []registration.Record {
	return slices.Clone(s.records)
}

func (s *stubEngine) Page(after string, keep func(registration.State) bool, size int) ([]registration.Record, bool) {
	return registration.PageOf(s.Records(), after, keep, size)
}

func (s *stubEngine) Force(ctx context.Context, ref string) (registration.Record, error) {
	return s.force(ctx, ref)
}
func (s *stubEngine) Record(ref string) (registration.Record, bool) {
	if s.record == nil {
		return registration.Record{}, false
	}
	return s.record(ref)
}

func manyRefs(n int) []string {
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf("t-%03d", n-1-i) // reverse order: the reply must sort them
	}
	return refs
}

func forceAll(t *testing.T, eng Engine, timeout time.Duration) (*registryv1.ForceRegisterResponse, error) {
	t.Helper()
	s := &service{engine: eng, log: slog.New(slog.DiscardHandler), forceTimeout: timeout}
	res, err := s.ForceRegister(t.Context(), connect.NewRequest(&registryv1.ForceRegisterRequest{All: true}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func TestForceAllIsBounded(t *testing.T) {
	const n = 100
	var inflight, peak atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	eng := &stubEngine{
		refs: func() []string { return manyRefs(n) },
		force: func(ctx context.Context, ref string) (registration.Record, error) {
			cur := inflight.Add(1)
			defer inflight.Add(-1)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			if cur == forceAllParallel {
				once.Do(func() { close(full) })
			}
			select { // the first forceAllParallel calls wait until they all run at once
			case <-full:
			case <-ctx.Done():
				return registration.Record{}, ctx.Err()
			}
			return registration.Record{TrunkRef: ref, State: registration.StateRegistered}, nil
		},
	}
	res, err := forceAll(t, eng, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := peak.Load(); got != forceAllParallel {
		t.Fatalf("peak concurrency %d, want %d", got, forceAllParallel)
	}
	var refs []string
	for _, r := range res.GetResults() {
		if r.GetError() != "" || r.GetRegistration().GetTrunkRef() != r.GetTrunkRef() {
			t.Fatalf("result %v", r)
		}
		refs = append(refs, r.GetTrunkRef())
	}
	if len(refs) != n || !slices.IsSorted(refs) {
		t.Fatalf("results not one per trunk in order: %v", refs)
	}
}

func TestForceAllDeadline(t *testing.T) {
	const n = forceAllParallel + 4
	eng := &stubEngine{
		refs: func() []string { return manyRefs(n) },
		force: func(ctx context.Context, _ string) (registration.Record, error) {
			<-ctx.Done()
			return registration.Record{}, ctx.Err()
		},
		record: func(ref string) (registration.Record, bool) {
			return registration.Record{TrunkRef: ref, State: registration.StateRegistering}, true
		},
	}
	res, err := forceAll(t, eng, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var waited, notForced int
	for _, r := range res.GetResults() {
		switch {
		case strings.Contains(r.GetError(), "no outcome before the deadline"):
			waited++
		case strings.HasPrefix(r.GetError(), "not forced"):
			notForced++
		default:
			t.Fatalf("result %v", r)
		}
		if r.GetRegistration().GetState() != registryv1.RegistrationState_REGISTRATION_STATE_REGISTERING {
			t.Fatalf("result without the current registration: %v", r)
		}
	}
	if waited != forceAllParallel || notForced != n-forceAllParallel {
		t.Fatalf("%d timed out, %d not forced", waited, notForced)
	}
}

func TestForceAllStopping(t *testing.T) {
	eng := &stubEngine{
		refs: func() []string { return []string{"t-1", "t-2"} },
		force: func(_ context.Context, ref string) (registration.Record, error) {
			if ref == "t-2" {
				return registration.Record{}, reconcile.ErrStopping
			}
			return registration.Record{TrunkRef: ref}, nil
		},
	}
	_, err := forceAll(t, eng, time.Minute)
	if connect.CodeOf(err) != connect.CodeUnavailable || !errors.Is(err, reconcile.ErrStopping) {
		t.Fatalf("err = %v", err)
	}
}

// TestForceAllFansOutToPeers: with several replicas, ForceRegister{all} runs on every
// live replica for its own trunks, with the caller's token, never twice (the forwarded
// call is not forwarded again), and the trunks of a replica that cannot be reached are
// reported as not forced.
func TestForceAllFansOutToPeers(t *testing.T) {
	const token = "fan-out-token"
	serve := func(eng Engine) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := NewServer(ln.Addr().String(), NewHandler(eng, Options{Token: token, Logger: slog.New(slog.DiscardHandler)}))
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().String()
	}
	forcer := func(n *atomic.Int32, owner string) func(context.Context, string) (registration.Record, error) {
		return func(_ context.Context, ref string) (registration.Record, error) {
			n.Add(1)
			return registration.Record{TrunkRef: ref, Owner: owner, State: registration.StateRegistered}, nil
		}
	}
	var byR1, byR2 atomic.Int32
	r1 := &stubEngine{refs: func() []string { return []string{"t-a1"} }, force: forcer(&byR1, "r1")}
	r2 := &stubEngine{refs: func() []string { return []string{"t-b2", "t-b1"} }, force: forcer(&byR2, "r2")}
	addr1, addr2 := serve(r1), serve(r2)
	r2.peers = []ownership.Peer{{ID: "r1", Advertise: addr1}}
	r1.peers = []ownership.Peer{{ID: "r2", Advertise: addr2}, {ID: "r3", Advertise: "127.0.0.1:1"}, {ID: "r4"}}
	r1.records = []registration.Record{
		{TrunkRef: "t-a1", Owner: "r1"}, {TrunkRef: "t-b1", Owner: "r2"},
		{TrunkRef: "t-c1", Owner: "r3", State: registration.StateRegistered}, {TrunkRef: "t-d1", Owner: "r4"},
	}

	client := registryv1connect.NewRegistrationServiceClient(http.DefaultClient, "http://"+addr1)
	req := connect.NewRequest(&registryv1.ForceRegisterRequest{All: true})
	req.Header().Set("Authorization", "Bearer "+token)
	res, err := client.ForceRegister(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Msg.GetResults() {
		got = append(got, r.GetTrunkRef())
		switch r.GetTrunkRef() {
		case "t-a1", "t-b1", "t-b2":
			if r.GetError() != "" || r.GetRegistration().GetState() != registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED {
				t.Errorf("%s: %v", r.GetTrunkRef(), r)
			}
		case "t-c1":
			if !strings.Contains(r.GetError(), "not forced") || !strings.Contains(r.GetError(), "r3") || r.GetRegistration().GetOwner() != "r3" {
				t.Errorf("t-c1 (owner unreachable): %v", r)
			}
		case "t-d1":
			if !strings.Contains(r.GetError(), "advertiseAddr") {
				t.Errorf("t-d1 (owner without address): %v", r)
			}
		}
	}
	if want := []string{"t-a1", "t-b1", "t-b2", "t-c1", "t-d1"}; !slices.Equal(got, want) {
		t.Fatalf("results for %v, want %v", got, want)
	}
	if byR1.Load() != 1 || byR2.Load() != 2 {
		t.Fatalf("forced %d on r1 and %d on r2, want 1 and 2 (each trunk once)", byR1.Load(), byR2.Load())
	}
}

func TestMergeResults(t *testing.T) {
	r := func(ref, err string) *registryv1.ForceRegisterResult {
		return &registryv1.ForceRegisterResult{TrunkRef: ref, Error: err}
	}
	got := mergeResults([]*registryv1.ForceRegisterResult{r("b", "moved"), r("d", "")},
		[]*registryv1.ForceRegisterResult{r("a", ""), r("b", ""), r("c", "x")})
	var flat []string
	for _, x := range got {
		flat = append(flat, x.GetTrunkRef()+"="+x.GetError())
	}
	if want := []string{"a=", "b=", "c=x", "d="}; !slices.Equal(flat, want) {
		t.Fatalf("merged %v, want %v", flat, want)
	}
}
