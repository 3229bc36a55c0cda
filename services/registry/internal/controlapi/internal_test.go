package controlapi

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"
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

func (e *listEngine) Page(after string, keep func(registration.State) bool, size int) ([]registration.Record, bool) {
	return registration.PageOf(e.recs, after, keep, size)
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
