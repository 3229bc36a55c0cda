// Package ownership decides which trunks this replica registers, and when it may
// send for one. The engine asks it, for every trunk of the desired set, whether the
// trunk is this replica's (Mine); it claims the ones it does not track yet (Claim),
// checks Valid at the last moment before each REGISTER, releases what it hands over
// or removes (Release), and hands everything over at shutdown (Leave). Run keeps the
// leases: it renews them, tells the engine the ones lost, and asks it to apply the
// desired set again when the members change or claims are left to retry.
//
// Two implementations: Leases, the lease protocol of the cluster package (several
// replicas on one Redis), and All, the trivial ownership of a single replica (every
// trunk, always valid, nothing to renew).
package ownership

import (
	"context"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
)

// Claimed is a trunk whose lease this replica has just taken.
type Claimed struct {
	Ref   string
	Fence int64
	// Record is the trunk's stored record (nil: none).
	Record *registration.Record
	// Takeover: the previous owner died (it neither released the lease nor said it
	// was leaving) and the binding was registered: the provider must see a refresh
	// now, at RefreshAt (within takeoverSpread of the claim).
	Takeover  bool
	RefreshAt time.Time
	// From is the previous owner the record names ("" when none).
	From string
}

// Engine is what Run tells the engine.
type Engine interface {
	// LeasesLost: this replica no longer holds the leases of refs (a renewal found
	// them gone). The engine takes back what Reclaim gives it and forgets the rest,
	// without unregistering.
	LeasesLost(ctx context.Context, refs []string)
	// Reassign applies the last desired set again: the members changed, leases were
	// lost, or claims are left to retry. It returns when the claims are done.
	Reassign(ctx context.Context)
}

// Peer is another live replica, with its control API address (may be empty).
type Peer struct{ ID, Advertise string }

// Coordinator is the part of *cluster.Cluster the lease protocol uses.
type Coordinator interface {
	ID() string
	LeaseTTL() time.Duration
	Members() []cluster.Member
	MembersChanged() <-chan struct{}
	Owner(ref string) string
	ClaimNext(ctx context.Context, refs []string) (got map[string]int64, freeIn time.Duration, err error)
	Renew(ctx context.Context) ([]string, error)
	Release(ctx context.Context, refs []string) error
	Held() map[string]int64
	Valid(ref string) (int64, bool)
	MarkLeaving(ctx context.Context) error
	Leaving(ctx context.Context, id string) (bool, error)
}

var _ Coordinator = (*cluster.Cluster)(nil)

// Leases is the ownership of a replica among several: each trunk belongs to the
// live replica rendezvous hashing picks, held by a lease with a fencing token.
type Leases struct {
	c       Coordinator
	records interface {
		GetMany(ctx context.Context, refs []string) (map[string]registration.Record, error)
	}
	log     *slog.Logger
	clock   func() time.Time
	started time.Time

	mu sync.Mutex
	// unclaimed: trunks this replica should own but could not claim yet; freeAt: when
	// the last lease another replica holds on one of them runs out (zero: unknown).
	unclaimed int
	freeAt    time.Time
	// claimHold: until then nothing is claimed (leases vanished: Redis restarted).
	claimHold time.Time
	// reassigning: a Reassign runs outside the lease loop.
	reassigning atomic.Bool
}

// NewLeases is the ownership of c's leases; records reads the stored records of the
// trunks it claims. clock is time.Now when nil.
func NewLeases(c Coordinator, records store.Store, log *slog.Logger, clock func() time.Time) *Leases {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Leases{c: c, records: records, log: log, clock: clock, started: clock()}
}

// ID is this replica's ID.
func (l *Leases) ID() string { return l.c.ID() }

// Mine reports whether ref belongs to this replica among the live members.
func (l *Leases) Mine(ref string) bool { return l.c.Owner(ref) == l.c.ID() }

// Owner is the live replica ref belongs to, and its control API address ("" when no
// member is known).
func (l *Leases) Owner(ref string) (id, advertise string) {
	id = l.c.Owner(ref)
	for _, m := range l.c.Members() {
		if m.ID == id {
			return id, m.Advertise
		}
	}
	return id, ""
}

// Valid reports whether this replica may send for ref now, and with which fence: its
// lease is held and, by this replica's own clock, not run out.
func (l *Leases) Valid(ref string) (int64, bool) { return l.c.Valid(ref) }

// Peers lists the other live replicas.
func (l *Leases) Peers() []Peer {
	var out []Peer
	for _, m := range l.c.Members() {
		if m.ID != l.c.ID() {
			out = append(out, Peer{ID: m.ID, Advertise: m.Advertise})
		}
	}
	return out
}

// Alone reports whether no other replica is alive.
func (l *Leases) Alone() bool {
	for _, m := range l.c.Members() {
		if m.ID != l.c.ID() {
			return false
		}
	}
	return true
}

// FirstWait is how long the engine waits before its first discovery: a third of the
// lease TTL, so that replicas started together see each other before they claim.
func (l *Leases) FirstWait() time.Duration { return l.c.LeaseTTL() / 3 }

// claimPiece is how many trunks Leases.Claim claims, reads and hands to the engine at a
// time: the engine starts on one piece (a takeover's writes and REGISTERs) while the next
// is claimed.
const claimPiece = 2000

// Claim takes the leases of refs (trunks Mine and not tracked by the engine yet) and
// reads their stored records, so that their Call-ID, From-tag and CSeq continue; it
// does so claimPiece trunks at a time, and calls take with the trunks of each piece it
// claimed, in the order of refs, after that piece's round trips (take must not keep the
// slice). A trunk whose previous owner died while it was registered comes with
// Takeover: it is refreshed at once (RefreshAt, within takeoverSpread). One handed
// over by a replica that left on purpose keeps its schedule. While leases just
// vanished (see Reclaim) nothing is claimed.
func (l *Leases) Claim(ctx context.Context, refs []string, take func([]Claimed)) {
	l.mu.Lock()
	hold := l.clock().Before(l.claimHold)
	if hold || len(refs) == 0 {
		l.unclaimed, l.freeAt = len(refs), time.Time{}
	}
	l.mu.Unlock()
	if hold || len(refs) == 0 {
		return
	}
	// Whether each replica that left did so on purpose, asked once per Claim.
	handedOver := map[string]bool{}
	unclaimed := 0
	var freeAt time.Time
	for piece := range slices.Chunk(refs, claimPiece) {
		n, at := l.claimPiece(ctx, piece, handedOver, take)
		unclaimed += n
		if at.After(freeAt) {
			freeAt = at
		}
	}
	l.mu.Lock()
	l.unclaimed, l.freeAt = unclaimed, freeAt
	l.mu.Unlock()
}

// claimPiece is Claim for one piece of refs; it returns how many it could not claim,
// and when the last lease another replica holds on one of them runs out (zero when
// none does). That time is read after the claim's round trip: it is never before the
// lease's expiry in Redis, and late by at most that round trip.
func (l *Leases) claimPiece(ctx context.Context, refs []string, handedOver map[string]bool, take func([]Claimed)) (int, time.Time) {
	got, freeIn, err := l.c.ClaimNext(ctx, refs)
	if err != nil {
		l.log.Debug("claiming trunks failed", "err", err, "trunks", len(refs))
	}
	var freeAt time.Time
	if freeIn > 0 {
		freeAt = l.clock().Add(freeIn)
	}
	if len(got) == 0 {
		return len(refs), freeAt
	}
	claimed := make([]string, 0, len(got))
	for _, ref := range refs {
		if _, ok := got[ref]; ok {
			claimed = append(claimed, ref)
		}
	}
	recs, err := l.records.GetMany(ctx, claimed)
	if err != nil {
		// What could not be read starts anew, as if the store had lost it.
		l.log.Debug("reading claimed trunks' records failed", "err", err, "read", len(recs), "trunks", len(claimed))
	}
	live := map[string]bool{}
	for _, m := range l.c.Members() {
		live[m.ID] = true
	}
	me := l.c.ID()
	now := l.clock()
	// A fresh replica's view of the members may still miss live ones: it takes nothing
	// as a failover before it has watched the members for a lease TTL.
	settled := now.Sub(l.started) > l.c.LeaseTTL()
	// A replica that left on purpose (SIGTERM) handed its bindings over in good
	// order: they keep their schedule. Only those of a replica that died are
	// refreshed at once.
	out := make([]Claimed, 0, len(claimed))
	spread := int64(takeoverSpread(len(claimed)))
	for _, ref := range claimed {
		c := Claimed{Ref: ref, Fence: got[ref]}
		if rec, ok := recs[ref]; ok {
			c.Record = &rec
			if rec.Owner != me {
				c.From = rec.Owner
			}
		}
		if from := c.From; from != "" && !live[from] {
			if _, seen := handedOver[from]; !seen {
				leaving, err := l.c.Leaving(ctx, from)
				handedOver[from] = err == nil && leaving
			}
			if settled && !handedOver[from] && c.Record.State == registration.StateRegistered {
				c.Takeover = true
				c.RefreshAt = now.Add(time.Duration(mrand.Int64N(spread)))
			}
		}
		out = append(out, c)
	}
	take(out)
	return len(refs) - len(got), freeAt
}

// takeoverRate paces the first REGISTERs of trunks taken over from a replica that
// died: a piece's are spread over as many seconds as it holds trunks over takeoverRate
// (100 ms for a piece of 2000), about the rate one replica sends at, so that a takeover
// goes out as fast as the replica can send it without a piece's worth at one instant.
// (A fixed second per piece, as before, was half of the two seconds a failover has
// after the leases run out.)
const takeoverRate = 20_000

// takeoverSpread is the window the refreshes of n trunks taken over are spread over.
func takeoverSpread(n int) time.Duration {
	return max(time.Duration(n)*time.Second/takeoverRate, time.Millisecond)
}

// Reclaim tries to take back leases this replica lost. A lease can vanish without a
// new owner (Redis restarted empty, or this replica was cut off past the TTL while
// nobody took over): then this replica's memory is the freshest state of the
// binding, and it keeps it. back holds the fences of those taken back; gone lists
// those another replica holds. After leases vanished, nothing else is claimed for a
// lease TTL: every replica takes its own back within a third of it first, and until
// then claiming anything else could take a binding whose record is gone too.
func (l *Leases) Reclaim(ctx context.Context, lost []string) (back map[string]int64, gone []string) {
	if len(lost) == 0 {
		return nil, nil
	}
	got, _, err := l.c.ClaimNext(ctx, lost)
	if err != nil || len(got) == 0 {
		return nil, lost
	}
	l.mu.Lock()
	l.claimHold = l.clock().Add(l.c.LeaseTTL())
	l.mu.Unlock()
	for _, ref := range lost {
		if _, ok := got[ref]; !ok {
			gone = append(gone, ref)
		}
	}
	return got, gone
}

// Release gives up the leases of refs (handed over to their new owner, or removed),
// without waiting for more than a few seconds: a lease not released expires.
func (l *Leases) Release(ctx context.Context, refs []string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.c.Release(rctx, refs); err != nil {
		l.log.Debug("lease release failed; it will expire", "trunks", len(refs), "err", err)
	}
}

// Leave hands every trunk over at shutdown: it tells the other replicas this one is
// leaving (so they keep the bindings' schedule) and releases every lease.
func (l *Leases) Leave(ctx context.Context) {
	refs := make([]string, 0)
	for ref := range l.c.Held() {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.c.MarkLeaving(rctx); err != nil {
		l.log.Warn("cannot tell the other replicas this one is leaving; they will refresh its trunks at once", "err", err)
	}
	if err := l.c.Release(rctx, refs); err != nil {
		l.log.Warn("releasing leases at shutdown failed; they will expire", "err", err)
		return
	}
	l.log.Info("leases released for the other replicas", "count", len(refs))
}
