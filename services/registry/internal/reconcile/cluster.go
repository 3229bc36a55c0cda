package reconcile

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/exchange"
	"sipreg.dev/services/registry/internal/registration"
)

// Coordinator is what the engine needs of the cluster besides ownership: the
// discovery lease and the desired set the leader publishes, and the change feed of
// every replica's records (for the mirror). It is implemented by *cluster.Cluster.
type Coordinator interface {
	desired.Coordinator
	ID() string
	FollowChanges(ctx context.Context, synced func(), onChange func(cluster.Change)) error
	PublishDeleted(ctx context.Context, refs []string) error
}

var _ Coordinator = (*cluster.Cluster)(nil)

// Ownership decides which trunks this replica registers and when it may send for
// one: ownership.Leases with several replicas, ownership.All with one.
type Ownership interface {
	ID() string
	Mine(ref string) bool
	Owner(ref string) (id, advertise string)
	Valid(ref string) (fence int64, ok bool)
	Peers() []ownership.Peer
	Alone() bool
	FirstWait() time.Duration
	// Claim calls take with the refs it claimed, a piece at a time, in the order of
	// refs, each piece after its I/O; take must not keep the slice.
	Claim(ctx context.Context, refs []string, take func([]ownership.Claimed))
	Reclaim(ctx context.Context, lost []string) (back map[string]int64, gone []string)
	Release(ctx context.Context, refs []string)
	Leave(ctx context.Context)
	Run(ctx context.Context, eng ownership.Engine, span func(context.Context, string) (context.Context, func(ownership.RoundInfo)))
}

var (
	_ Ownership = (*ownership.Leases)(nil)
	_ Ownership = ownership.All{}
)

// NotOwnerError says another replica owns the trunk; Advertise reaches its control API.
type NotOwnerError struct {
	Ref, Owner, Advertise string
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("trunk %s is owned by replica %s", e.Ref, e.Owner)
}

// Peers lists the other live replicas (none with one replica).
func (r *Reconciler) Peers() []ownership.Peer { return r.own.Peers() }

// notOwner explains why this replica does not hold ref.
func (r *Reconciler) notOwner(ref string) error {
	if !r.src.Wanted(ref) {
		return fmt.Errorf("%w: %s", ErrUnknownTrunk, ref)
	}
	switch owner, advertise := r.own.Owner(ref); {
	case owner == r.own.ID():
		return fmt.Errorf("trunk %s is being claimed by this replica; try again shortly", ref)
	case owner != "":
		return &NotOwnerError{Ref: ref, Owner: owner, Advertise: advertise}
	}
	return fmt.Errorf("trunk %s has no live owner yet; try again shortly", ref)
}

// errNotOwner stops a REGISTER this replica may no longer send: its lease on the trunk
// ran out by its own clock (paused, or cut off from Redis).
var errNotOwner = exchange.NotSent("lease on the trunk not held")

// claim takes the trunks of set at idx, which this replica should own and does not
// track yet: their records continue (Call-ID, From-tag, CSeq), and they are scheduled.
// One taken over from a replica that died is refreshed at once (RefreshAt); one handed
// over keeps its schedule. It returns how many it took, and how many of them were new
// to this replica. window is the startup spread of the pass (startupWindow) for the
// first REGISTERs it schedules.
func (r *Reconciler) claim(ctx context.Context, set []desired.Trunk, idx []int, now time.Time, window time.Duration) (took, added int) {
	refs := make([]string, len(idx))
	for i, j := range idx {
		refs[i] = set[j].Trunk.Ref
	}
	me := r.own.ID()
	var due []string
	from := map[string]int{}
	// taken: claimed trunks whose record is written with the new owner before their
	// workers run; takeovers: those of the piece in hand that were taken over, whose
	// writes start with each piece (Ownership.Claim), so the first REGISTERs go out
	// while the next piece is claimed.
	var taken, takeovers []registration.Record
	var writes errgroup.Group
	writes.SetLimit(takeoverWrites)
	// take is called in the order of refs (Ownership.Claim), for those claimed: a
	// cursor finds each one's trunk, with no index of 100,000 refs at a start. r.mu is
	// held, by claimLockRun trunks at a time.
	next := 0
	take := func(c ownership.Claimed) {
		for next < len(refs) && refs[next] != c.Ref {
			next++
		}
		if next == len(refs) {
			return
		}
		d := set[idx[next]]
		next++
		took++
		e, exists := r.entries[c.Ref]
		if !exists {
			added++
			e = &entry{first: true}
			if c.Record != nil {
				e.adopt(*c.Record)
			}
			r.entries[c.Ref] = e
		}
		e.handover = false
		if k := r.apply(d, now, window); k != "" {
			due = append(due, k)
		}
		e.rec.SetOwner(me, c.Fence)
		switch {
		case c.Takeover && e.rec.State() == registration.StateRegistered:
			// Failover: the provider must see a refresh before anything can lapse. Its
			// first REGISTER goes above the stored CSeq ceiling, so its record is
			// written first with a new one (claimWrite: in batches, not one
			// reservation per trunk that its worker would wait for), then it is due.
			r.sched.Cancel(e)
			e.claiming = true
			e.rec.SetNext(registration.ActionRefresh, c.RefreshAt)
			from[c.From]++
			r.log.Debug("trunk taken over from a replica that left", "trunk", c.Ref, "from", c.From, "fence", c.Fence)
			takeovers = append(takeovers, e.record())
		case c.Record != nil:
			// Write the new owner and fence at once, so every replica's control API
			// shows who holds the trunk now (its next REGISTER may be minutes away).
			// Its worker waits for this write, so it never overwrites a newer outcome.
			e.claiming = true
			taken = append(taken, e.record())
		}
	}
	r.own.Claim(ctx, refs, func(piece []ownership.Claimed) {
		takeovers = nil // the previous piece's batches are being written
		for run := range slices.Chunk(piece, claimLockRun) {
			r.mu.Lock()
			for _, c := range run {
				take(c)
			}
			r.mu.Unlock()
		}
		for batch := range slices.Chunk(takeovers, takeoverBatch) {
			writes.Go(func() error {
				r.claimWrite(ctx, batch, true)
				return nil
			})
		}
	})
	_ = writes.Wait()
	if len(taken) > 0 {
		r.claimWrite(ctx, taken, false)
	}
	for prev, n := range from {
		r.log.Info("trunks taken over from a replica that left", "from", prev, "count", n)
	}
	r.cancelAndQueue(due)
	return took, added
}

// claimLockRun is how many claimed trunks claim takes into the engine under one hold
// of r.mu: at a start the workers, already sending for the first trunks, contend for
// it, and a lock per trunk cost a handoff per trunk; 256 hold it well under a
// millisecond.
const claimLockRun = 256

// The records of trunks taken over are written takeoverBatch to a write, takeoverWrites
// writes at a time: the first batches' REGISTERs go out while the next are written.
const (
	takeoverBatch  = 500
	takeoverWrites = 4
)

// claimWrite writes the records of trunks just claimed (e.claiming set), then lets
// their workers run; those another replica holds now are forgotten. With due (trunks
// taken over from a replica that died: their records carry this replica's fence and a
// CSeq ceiling above every CSeq the dead one can have sent, so that their first
// REGISTERs need no reservation of their own), each is scheduled at its NextActionAt
// (its RefreshAt, within 100 ms). Should the write fail, each worker still reserves
// its CSeq before sending, or sends nothing.
func (r *Reconciler) claimWrite(ctx context.Context, recs []registration.Record, due bool) {
	refused, err := r.writeRecords(ctx, recs)
	no := setOf(refused)
	r.mu.Lock()
	for _, rec := range recs {
		if e := r.entries[rec.TrunkRef]; e != nil {
			e.claiming = false
			if due && !no[rec.TrunkRef] {
				r.sched.At(e, e.rec.NextActionAt())
			}
		}
	}
	r.mu.Unlock()
	if err == nil {
		r.lose(refused)
	}
}

// LeasesLost takes back what it can of the trunks whose leases this replica lost, and
// forgets the rest: their new owner continues the bindings (ownership.Engine).
func (r *Reconciler) LeasesLost(ctx context.Context, lost []string) {
	r.lose(r.reclaim(ctx, lost))
}

// Reassign applies the last desired set again (ownership.Engine).
func (r *Reconciler) Reassign(ctx context.Context) {
	if set, have := r.src.Last(); have {
		r.reconcileDesired(ctx, set)
	}
}

// leaseSpan makes the spans of the ownership's lease rounds.
func (r *Reconciler) leaseSpan(ctx context.Context, name string) (context.Context, func(ownership.RoundInfo)) {
	ctx, span := startSpan(ctx, r.tracer, name)
	return ctx, func(i ownership.RoundInfo) {
		if name == "registry.lease.round" {
			endLeaseRound(span, i.Renew, i.MembersChanged, i.Lost, i.RenewErr, i.Reassign)
			return
		}
		span.End()
	}
}

// reclaim takes back the leases of lost that nobody else took (see
// ownership.Leases.Reclaim) and returns those another replica holds. What it takes
// back continues above what the store holds (another replica may have held the trunk
// in between) and is written back with this replica's fence.
func (r *Reconciler) reclaim(ctx context.Context, lost []string) []string {
	if len(lost) == 0 {
		return nil
	}
	got, gone := r.own.Reclaim(ctx, lost)
	if len(got) == 0 {
		return gone
	}
	back := make([]string, 0, len(got))
	for ref := range got {
		back = append(back, ref)
	}
	r.continueStored(ctx, back)
	me := r.own.ID()
	var recs []registration.Record
	r.mu.Lock()
	for ref, fence := range got {
		e := r.entries[ref]
		if e == nil {
			gone = append(gone, ref)
			continue
		}
		e.rec.SetOwner(me, fence)
		recs = append(recs, e.record())
	}
	r.mu.Unlock()
	if len(recs) > 0 {
		r.log.Info("leases taken back after they vanished; bindings continue", "count", len(recs))
		if refused, err := r.writeRecords(ctx, recs); err == nil {
			gone = append(gone, refused...)
		}
	}
	return gone
}

// lose forgets trunks whose lease another replica holds now: no unregister, the new
// owner continues the binding.
func (r *Reconciler) lose(refs []string) {
	if len(refs) == 0 {
		return
	}
	// Not a removal for watchers: the new owner's write of the trunk reaches them
	// through the change feed.
	for _, e := range r.entriesOf(refs, true) {
		r.sched.Cancel(e)
	}
	r.log.Info("trunks now owned by another replica", "count", len(refs), "first", refs[0])
}

// handOver releases one trunk that another live replica owns now (called by its
// worker, so no REGISTER of it is in flight).
func (r *Reconciler) handOver(ctx context.Context, key string, e *entry) {
	r.mu.Lock()
	if r.entries[key] != e {
		r.mu.Unlock()
		return
	}
	r.forgetLocked(key, e)
	r.mu.Unlock()
	r.sched.Cancel(e)
	r.own.Release(ctx, []string{key})
}

// writeRecords stores a batch (fenced with several replicas: refused lists what
// another replica owns now). Each record is written with its CSeq ceiling (see
// cseq.go), set in recs in place.
func (r *Reconciler) writeRecords(ctx context.Context, recs []registration.Record) ([]string, error) {
	r.mu.Lock()
	r.stampLocked(recs)
	r.mu.Unlock()
	refused, err := r.st.PutMany(ctx, recs)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.confirmLocked(recs, refused)
	r.mu.Unlock()
	return refused, nil
}
