// Package desired fetches the desired set: the trunks the Routr API says to register
// (FindBy with sendRegister true), parsed once. With one replica it asks the API; with
// several, the replica holding the discovery lease asks the API and publishes the
// answer in Redis, and the others read what it published.
//
// A Source remembers the last answer it fetched: an answer byte for byte the same as
// the last one applied is not parsed again (an idle discovery tick at 100,000 trunks
// costs a hash, not a decode), and when the API is away or a follower has nothing new,
// the engine goes on with the last set. An item of an answer that cannot be decoded is
// reported and, when its ref can still be read, kept as a placeholder that carries the
// reason (see Trunk.Err), so that a trunk whose data turned bad is neither unregistered
// as gone nor sent.
package desired

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/trunk"
	"sipreg.dev/services/registry/internal/upstream"
)

// Trunk is one trunk of the desired set. Err, when set, says why it cannot be
// registered (bad or undecodable API data): the engine shows it as rejected.
type Trunk struct {
	Trunk trunk.Trunk
	Err   error
	// Warnings are trunk.Read's: what of a usable trunk's data was not used as given.
	Warnings []string
}

// Coordinator is what a Source needs of the cluster: the discovery lease and the
// desired set the leader publishes. It is implemented by *cluster.Cluster.
type Coordinator interface {
	TryDiscovery(ctx context.Context, ttl time.Duration) (bool, error)
	PublishDesired(ctx context.Context, blob []byte) error
	FetchDesired(ctx context.Context, have string) ([]byte, string, bool, error)
}

var _ Coordinator = (*cluster.Cluster)(nil)

// FollowerPoll is how often a replica that knows no desired set yet asks for the one
// the discovery leader publishes.
const FollowerPoll = time.Second

// Options wire a Source.
type Options struct {
	API upstream.Trunks
	// Coord is the cluster with several replicas; nil: one replica, which asks the API.
	Coord Coordinator
	// LeaseTTL is how long the discovery lease is held (it must outlast a discovery).
	LeaseTTL time.Duration
	Log      *slog.Logger
	// Observe hears each FindBy's outcome: the trunks it returned, and its error.
	Observe func(trunks int, err error)
}

// Source fetches desired sets; its methods may be called from several goroutines.
type Source struct {
	o           Options
	discoveries atomic.Int64
	// answerSum and answerLen describe the last API answer applied (0: none).
	answerSum atomic.Uint64
	answerLen atomic.Int64

	mu         sync.Mutex
	apiDown    bool
	pendingSum uint64 // the answer fetched, remembered by Applied
	pendingLen int64
	last       []Trunk // the last desired set fetched
	known      bool
	version    string // of the set the leader published, as last read
}

// New returns a Source.
func New(o Options) *Source {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Observe == nil {
		o.Observe = func(int, error) {}
	}
	return &Source{o: o}
}

// Fetch returns the desired set: from the API (one replica, or the discovery leader,
// which publishes it), or as published by the leader. ok is false when nothing is
// known to be current: then nothing changes. With one replica, an answer the same as
// the last one applied is not ok either: nothing to do.
func (s *Source) Fetch(ctx context.Context) (set []Trunk, ok bool) {
	if s.o.Coord == nil {
		_, set, unchanged, ok := s.findBy(ctx)
		if !ok || unchanged {
			return nil, false
		}
		return s.keep(set, ""), true
	}
	leader, err := s.o.Coord.TryDiscovery(ctx, s.o.LeaseTTL)
	if err != nil {
		s.o.Log.Debug("discovery lease unavailable; keeping the last desired set", "err", err)
		return s.Last()
	}
	if leader {
		raw, set, unchanged, ok := s.findBy(ctx)
		if !ok {
			return nil, false
		}
		if unchanged {
			return s.Last()
		}
		// The answer is published as the API gave it: every replica reads it the same
		// way (decode), undecodable items included.
		if err := s.o.Coord.PublishDesired(ctx, raw); err != nil {
			s.o.Log.Warn("cannot publish the desired set to the other replicas", "err", err)
		}
		return s.keep(set, cluster.DesiredVersion(raw)), true
	}
	s.mu.Lock()
	have := s.version
	s.mu.Unlock()
	blob, ver, changed, err := s.o.Coord.FetchDesired(ctx, have)
	if err != nil || ver == "" || !changed {
		// Redis away, no leader has published yet (or Redis lost it), or nothing new:
		// keep going.
		return s.Last()
	}
	set, _, err = s.decode(blob)
	if err != nil {
		s.o.Log.Warn("unreadable desired set in the cache; keeping the last one", "err", err)
		return s.Last()
	}
	// What this replica applied as a leader no longer tells what is current.
	s.answerSum.Store(0)
	return s.keep(set, ver), true
}

// keep remembers set as the last desired set (and the published version it came from,
// if any).
func (s *Source) keep(set []Trunk, version string) []Trunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = true
	if s.o.Coord != nil {
		// Only a cluster applies a set again (members changed) or asks whether a trunk
		// it does not hold is wanted; one replica holds every wanted trunk, and keeping
		// the set would cost about 140 bytes a trunk for nothing.
		s.last = set
	}
	if version != "" {
		s.version = version
	}
	return set
}

// Applied says that the set Fetch returned last was applied: the API answer it came
// from is remembered, so that the same answer next time is not parsed again. (An answer
// fetched but not applied, the engine stopping say, is parsed again.)
func (s *Source) Applied() {
	s.mu.Lock()
	sum, n := s.pendingSum, s.pendingLen
	s.pendingSum = 0
	s.mu.Unlock()
	if sum != 0 {
		s.answerSum.Store(sum)
		s.answerLen.Store(n)
	}
}

// Last returns the last desired set fetched (with several replicas; with one, the set
// is not kept and Last returns none); known is false before the first.
func (s *Source) Last() (set []Trunk, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.known
}

// Wanted reports whether ref is in the last desired set (with several replicas; with
// one, every wanted trunk is tracked by the engine, which asks only for others, and
// Wanted is false).
func (s *Source) Wanted(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.last {
		if d.Trunk.Ref == ref {
			return true
		}
	}
	return false
}

// Polling reports whether the engine should ask again after FollowerPoll rather than a
// whole registerInterval: a follower that knows no desired set yet (it started before
// the leader published).
func (s *Source) Polling() bool {
	_, known := s.Last()
	return s.o.Coord != nil && !known
}

// APIDown reports whether the last FindBy failed.
func (s *Source) APIDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiDown
}

// Discoveries counts the FindBy calls made.
func (s *Source) Discoveries() int64 { return s.discoveries.Load() }

// findBy calls the API and reports the outcome (logged once per outage), with the
// answer and the desired set decoded from it. unchanged is true when the answer is
// byte for byte the last one applied: nothing to do, nothing decoded.
func (s *Source) findBy(ctx context.Context) (raw []byte, set []Trunk, unchanged, ok bool) {
	var sum uint64
	var n int
	var err error
	known := s.answerSum.Load()
	if api, ok := s.o.API.(upstream.SummingTrunks); ok {
		raw, sum, err = api.FindRegisteringSum(ctx, known)
	} else if raw, err = s.o.API.FindRegisteringRaw(ctx); err == nil {
		sum = xxhash.Sum64(raw)
	}
	if err == nil {
		if known == sum && sum != 0 {
			unchanged = true
			n = int(s.answerLen.Load())
		} else {
			var uerr error
			if set, n, uerr = s.decode(raw); uerr != nil {
				err = fmt.Errorf("trunks findBy: unreadable answer: %w", uerr)
			}
		}
	}
	if ctx.Err() != nil {
		return nil, nil, false, false
	}
	s.o.Observe(n, err)
	traceFindBy(ctx, n, unchanged, err)
	s.discoveries.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if !s.apiDown {
			s.o.Log.Warn("trunk discovery failed; keeping every known registration", "err", err)
		}
		s.apiDown = true
		return nil, nil, false, false
	}
	if s.apiDown {
		s.apiDown = false
		s.o.Log.Info("trunk discovery recovered", "trunks", n)
	}
	if !unchanged {
		// Remembered only once applied (Applied).
		s.pendingSum, s.pendingLen = sum, int64(n)
	}
	return raw, set, unchanged, true
}

// decode turns an answer (the API's, or as the discovery leader published it) into the
// desired set, one item at a time: each item is decoded, checked (trunk.FromProto) and
// dropped, so that a large answer is never held decoded all at once. Duplicates and
// refless trunks are dropped; n counts the items (each undecodable one with a readable
// ref included).
//
// An item that cannot be decoded is reported, one line each; the answer's other trunks
// go on. When its ref can still be read, the trunk stays in the set as a placeholder,
// rejected with the reason (and so does any other item of the same ref): it is neither
// sent nor unregistered as gone.
func (s *Source) decode(raw []byte) (set []Trunk, n int, err error) {
	var seen map[string]bool
	sized := func(size int) {
		seen = make(map[string]bool, size)
		set = make([]Trunk, 0, size)
	}
	add := func(p *trunksv2beta1.Trunk) {
		n++
		t, warnings, err := trunk.Read(p)
		if t.Ref == "" {
			s.o.Log.Warn("trunk without a usable ref ignored", "err", err)
			return
		}
		if seen[t.Ref] {
			return
		}
		seen[t.Ref] = true
		set = append(set, Trunk{Trunk: t, Err: err, Warnings: warnings})
	}
	skipped, err := upstream.EachFindBy(raw, sized, add)
	if err != nil {
		return nil, 0, err
	}
	if len(skipped) == 0 {
		return set, n, nil
	}
	undecodable := map[string]string{}
	for _, sk := range skipped {
		s.o.Log.Warn("trunk discovery: an item of the answer cannot be decoded; skipped", "item", sk.String())
		if sk.Ref != "" {
			undecodable[sk.Ref] = sk.Err.Error()
			add(&trunksv2beta1.Trunk{Ref: sk.Ref, SendRegister: true})
		}
	}
	for i := range set {
		if why, bad := undecodable[set[i].Trunk.Ref]; bad {
			set[i].Err = fmt.Errorf("%w: %s: undecodable API data: %s", trunk.ErrInvalid, set[i].Trunk.Ref, why)
		}
	}
	return set, n, nil
}

// Attribute keys this package sets on the registry.discover span (the engine starts it).
const (
	AttrSeen      = attribute.Key("registry.trunks.seen")
	AttrUnchanged = attribute.Key("registry.discovery.unchanged")
)

// traceFindBy adds what FindBy answered to the discovery tick's span in ctx.
func traceFindBy(ctx context.Context, seen int, unchanged bool, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrSeen.Int(seen), AttrUnchanged.Bool(unchanged))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
}
