package controlapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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

func TestPageToken(t *testing.T) {
	for _, ref := range []string{"t-a", "trunk:with:colons", "ünïcode/ref?&=", strings.Repeat("x", 300)} {
		tok := encodePageToken(ref)
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("token %q is not unpadded base64url", tok)
		}
		got, err := decodePageToken(tok)
		if err != nil || got != ref {
			t.Errorf("decode(encode(%q)) = %q, %v", ref, got, err)
		}
	}
	if got, err := decodePageToken(""); err != nil || got != "" {
		t.Errorf("empty token: %q, %v", got, err)
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER   abc  ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
		{"abc", "", false},
	} {
		got, ok := bearerToken(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStateMapping(t *testing.T) {
	seen := map[registryv1.RegistrationState]bool{}
	for _, s := range registration.States {
		p := stateToProto(s)
		if p == registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED || seen[p] {
			t.Fatalf("%s maps to %v", s, p)
		}
		seen[p] = true
		if back, ok := stateFromProto(p); !ok || back != s {
			t.Fatalf("%v maps back to %q", p, back)
		}
	}
	if len(seen) != len(registryv1.RegistrationState_name)-1 {
		t.Fatalf("%d of %d enum values covered", len(seen), len(registryv1.RegistrationState_name)-1)
	}
	if p := stateToProto("bogus"); p != registryv1.RegistrationState_REGISTRATION_STATE_UNSPECIFIED {
		t.Fatalf("unknown state maps to %v", p)
	}
	r := toProto(registration.Record{Failures: math.MaxInt64, GrantedExpires: -1})
	if r.GetFailureCount() != math.MaxInt32 || r.GetGrantedExpiresSeconds() != -1 || r.GetExpiresAt() != nil {
		t.Fatalf("clamping: %v", r)
	}
}

func TestNewServer(t *testing.T) {
	s := NewServer("127.0.0.1:0", nil)
	if s.Protocols == nil || !s.Protocols.HTTP1() || !s.Protocols.UnencryptedHTTP2() {
		t.Fatalf("protocols = %v", s.Protocols)
	}
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("a timeout or limit is unset: %+v", s)
	}
	// Any WriteTimeout would end every WatchRegistrations stream at that age.
	if s.WriteTimeout != 0 {
		t.Fatalf("WriteTimeout = %v", s.WriteTimeout)
	}
	if h2 := s.HTTP2; h2 == nil || h2.SendPingTimeout <= 0 || h2.PingTimeout <= 0 || h2.WriteByteTimeout <= 0 {
		t.Fatalf("HTTP2 = %+v", s.HTTP2)
	}
}

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

func BenchmarkListRegistrations100k(b *testing.B) {
	recs := make([]registration.Record, 100_000)
	for i := range recs {
		recs[i] = registration.Record{
			TrunkRef: fmt.Sprintf("trunk-%06d", (i*7919)%len(recs)), // not in order
			State:    registration.States[i%len(registration.States)],
		}
	}
	s := &service{engine: &listEngine{recs: recs}, log: slog.New(slog.DiscardHandler), forceTimeout: time.Minute}
	req := connect.NewRequest(&registryv1.ListRegistrationsRequest{PageSize: maxPageSize})
	for b.Loop() {
		if _, err := s.ListRegistrations(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// listEngine returns a copy of recs, as the engine does.
type listEngine struct {
	Engine
	recs []registration.Record
}

func (e *listEngine) Records() []registration.Record { return slices.Clone(e.recs) }

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

// refusalLog writes one line per peer address per authLogInterval, says how many
// refusals it left out, and remembers a bounded number of addresses.
func TestRefusalLog(t *testing.T) {
	var buf lockedLines
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	l := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	ctx := t.Context()
	const proc = "/sipreg.registry.v1.RegistrationService/ListRegistrations"

	for i := range 10 { // one address, a new port (connection) each time
		l.refused(ctx, proc, fmt.Sprintf("10.0.0.1:%d", 40000+i))
	}
	l.refused(ctx, proc, "[2001:db8::1]:5000")
	l.refused(ctx, proc, "[2001:db8::1]:5001")
	if got := buf.count(); got != 2 {
		t.Fatalf("%d lines for two addresses, want 2:\n%s", got, buf.String())
	}
	now = now.Add(authLogInterval - time.Second)
	l.refused(ctx, proc, "10.0.0.1:1")
	if got := buf.count(); got != 2 {
		t.Fatalf("a line within the interval:\n%s", buf.String())
	}
	now = now.Add(time.Second)
	l.refused(ctx, proc, "10.0.0.1:2")
	if got := buf.count(); got != 3 || !strings.Contains(buf.last(), "peer=10.0.0.1:2") || !strings.Contains(buf.last(), "suppressed=10") {
		t.Fatalf("after the interval, want a third line with suppressed=10:\n%s", buf.String())
	}

	// Many addresses at once: the table stays bounded; the ones past it share a slot.
	for i := range 3 * maxAuthLogPeers {
		l.refused(ctx, proc, fmt.Sprintf("192.0.%d.%d:5060", i/256, i%256))
	}
	if n := len(l.peers); n > maxAuthLogPeers+1 {
		t.Fatalf("%d addresses remembered, want at most %d", n, maxAuthLogPeers+1)
	}
	if got := buf.count(); got > 3+maxAuthLogPeers+1 {
		t.Fatalf("%d lines for a burst from many addresses, want at most %d", got, 3+maxAuthLogPeers+1)
	}
	// Once the interval has passed, the old addresses are forgotten for new ones.
	now = now.Add(authLogInterval)
	before := buf.count()
	l.refused(ctx, proc, "198.51.100.7:5060")
	if buf.count() != before+1 || l.peers["198.51.100.7"] == nil {
		t.Fatalf("a new address after the interval was not logged on its own:\n%s", buf.last())
	}
}

// lockedLines is a log sink that counts lines.
type lockedLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedLines) count() int { return strings.Count(l.String(), "\n") }

func (l *lockedLines) last() string {
	lines := strings.Split(strings.TrimSuffix(l.String(), "\n"), "\n")
	return lines[len(lines)-1]
}

// streamLimit never lets more than max streams in, under contention.
func TestStreamLimit(t *testing.T) {
	l := streamLimit{max: 3}
	var (
		in, peak atomic.Int64
		wg       sync.WaitGroup
	)
	for range 64 {
		wg.Go(func() {
			for range 200 {
				if !l.acquire() {
					continue
				}
				n := in.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				in.Add(-1)
				l.release()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 1 {
		t.Fatalf("peak = %d streams at once, want 1..3", p)
	}
	if l.open.Load() != 0 {
		t.Fatalf("open = %d after every release", l.open.Load())
	}
}
