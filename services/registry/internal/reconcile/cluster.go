package reconcile

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
)

// Coordinator shares trunks among replicas on one Redis: membership, per-trunk leases
// with fencing tokens, a discovery lease and the published desired set. It is
// implemented by *cluster.Cluster.
type Coordinator interface {
	ID() string
	LeaseTTL() time.Duration
	Members() []cluster.Member
	MembersChanged() <-chan struct{}
	Owner(ref string) string
	Claim(ctx context.Context, refs []string) (map[string]int64, error)
	Renew(ctx context.Context) ([]string, error)
	Release(ctx context.Context, refs []string) error
	Held() map[string]int64
	Valid(ref string) (int64, bool)
	TryDiscovery(ctx context.Context, ttl time.Duration) (bool, error)
	MarkLeaving(ctx context.Context) error
	Leaving(ctx context.Context, id string) (bool, error)
	PublishDesired(ctx context.Context, blob []byte) error
	FetchDesired(ctx context.Context, have string) ([]byte, string, bool, error)
	FollowChanges(ctx context.Context, synced func(), onChange func(cluster.Change)) error
	PublishDeleted(ctx context.Context, refs []string) error
}

var _ Coordinator = (*cluster.Cluster)(nil)

// NotOwnerError says another replica owns the trunk; Advertise reaches its control API.
type NotOwnerError struct {
	Ref, Owner, Advertise string
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("trunk %s is owned by replica %s", e.Ref, e.Owner)
}

// Peer is another live replica, with its control API address (may be empty).
type Peer struct{ ID, Advertise string }

// Peers lists the other live replicas (none with one replica).
func (r *Reconciler) Peers() []Peer {
	if r.coord == nil {
		return nil
	}
	var out []Peer
	for _, m := range r.coord.Members() {
		if m.ID != r.coord.ID() {
			out = append(out, Peer{ID: m.ID, Advertise: m.Advertise})
		}
	}
	return out
}

// notOwner explains why this replica does not hold ref.
func (r *Reconciler) notOwner(ref string) error {
	r.mu.Lock()
	wanted := false
	for _, d := range r.desiredSet {
		if d.t.Ref == ref {
			wanted = true
			break
		}
	}
	r.mu.Unlock()
	if !wanted {
		return fmt.Errorf("%w: %s", ErrUnknownTrunk, ref)
	}
	owner := r.coord.Owner(ref)
	if owner == r.coord.ID() {
		return fmt.Errorf("trunk %s is being claimed by this replica; try again shortly", ref)
	}
	for _, m := range r.coord.Members() {
		if m.ID == owner {
			return &NotOwnerError{Ref: ref, Owner: owner, Advertise: m.Advertise}
		}
	}
	return fmt.Errorf("trunk %s has no live owner yet; try again shortly", ref)
}

// errNotOwner stops a REGISTER this replica may no longer send: its lease on the trunk
// ran out by its own clock (paused, or cut off from Redis).
var errNotOwner = errors.New("lease on the trunk not held")

// fetchDesired returns the desired set: from the API (one replica, or the discovery
// leader, which publishes it), or as published by the leader. ok is false when nothing
// is known to be current: then nothing changes.
func (r *Reconciler) fetchDesired(ctx context.Context) ([]desiredTrunk, bool) {
	if r.coord == nil {
		items, unchanged, ok := r.findBy(ctx)
		if !ok || unchanged {
			return nil, false
		}
		return r.parseDesired(items), true
	}
	leader, err := r.coord.TryDiscovery(ctx, 2*r.spec.RegisterInterval+r.spec.APITimeout)
	if err != nil {
		r.log.Debug("discovery lease unavailable; keeping the last desired set", "err", err)
		return r.lastDesired()
	}
	if leader {
		items, unchanged, ok := r.findBy(ctx)
		if !ok {
			return nil, false
		}
		if unchanged {
			return r.lastDesired()
		}
		blob, err := proto.Marshal(&trunksv2beta1.FindByResponse{Items: items})
		if err == nil {
			err = r.coord.PublishDesired(ctx, blob)
		}
		if err != nil {
			r.log.Warn("cannot publish the desired set to the other replicas", "err", err)
		}
		r.mu.Lock()
		r.desiredVer = cluster.DesiredVersion(blob)
		r.mu.Unlock()
		return r.parseDesired(items), true
	}
	r.mu.Lock()
	have := r.desiredVer
	r.mu.Unlock()
	blob, ver, changed, err := r.coord.FetchDesired(ctx, have)
	if err != nil || ver == "" {
		// Redis away, or no leader has published yet (or Redis lost it): keep going.
		return r.lastDesired()
	}
	if !changed {
		return r.lastDesired()
	}
	var resp trunksv2beta1.FindByResponse
	if err := proto.Unmarshal(blob, &resp); err != nil {
		r.log.Warn("unreadable desired set in the cache; keeping the last one", "err", err)
		return r.lastDesired()
	}
	r.mu.Lock()
	r.desiredVer = ver
	r.mu.Unlock()
	// What this replica applied as a leader no longer tells what is current.
	r.answerSum.Store(0)
	return r.parseDesired(resp.GetItems()), true
}

func (r *Reconciler) lastDesired() ([]desiredTrunk, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.desiredSet, r.haveDesired
}

// claim takes the leases of trunks this replica should own, reads each one's record
// (Call-ID, From-tag, CSeq continue) and schedules it. A trunk taken from a replica
// that died is refreshed soon; one handed over by a live replica keeps its schedule.
func (r *Reconciler) claim(ctx context.Context, claims []desiredTrunk, now time.Time) {
	refs := make([]string, len(claims))
	for i, d := range claims {
		refs[i] = d.t.Ref
	}
	got, err := r.coord.Claim(ctx, refs)
	if err != nil {
		r.log.Debug("claiming trunks failed", "err", err, "trunks", len(refs))
	}
	r.mu.Lock()
	r.unclaimed = len(claims) - len(got)
	r.mu.Unlock()
	if len(got) == 0 {
		return
	}
	live := map[string]bool{}
	for _, m := range r.coord.Members() {
		live[m.ID] = true
	}
	me := r.coord.ID()
	claimed := make([]string, 0, len(got))
	for _, d := range claims {
		if _, ok := got[d.t.Ref]; ok {
			claimed = append(claimed, d.t.Ref)
		}
	}
	recs := r.getMany(ctx, claimed)
	// A fresh replica's view of the members may still miss live ones: it takes nothing
	// as a failover before it has watched the members for a lease TTL.
	settled := now.Sub(r.started) > r.coord.LeaseTTL()
	// A replica that left on purpose (SIGTERM) handed its bindings over in good
	// order: they keep their schedule. Only those of a replica that died are
	// refreshed at once.
	handedOver := map[string]bool{}
	for _, d := range claims {
		if rec, ok := recs[d.t.Ref]; ok && rec.Owner != "" && rec.Owner != me && !live[rec.Owner] {
			if _, seen := handedOver[rec.Owner]; !seen {
				leaving, err := r.coord.Leaving(ctx, rec.Owner)
				handedOver[rec.Owner] = err == nil && leaving
			}
		}
	}
	var due []string
	from := map[string]int{}
	r.mu.Lock()
	for _, d := range claims {
		fence, ok := got[d.t.Ref]
		if !ok {
			continue
		}
		e, exists := r.entries[d.t.Ref]
		if !exists {
			e = &entry{first: true}
			if rec, ok := recs[d.t.Ref]; ok {
				e.adopt(rec)
			}
			r.entries[d.t.Ref] = e
		}
		e.handover = false
		_, e.claiming = recs[d.t.Ref]
		prev := e.rec.Owner
		if k := r.apply(d.t, d.err, now); k != "" {
			due = append(due, k)
		}
		e.rec.Owner, e.rec.Fence = me, fence
		if settled && prev != "" && prev != me && !live[prev] && !handedOver[prev] && e.rec.State == registration.StateRegistered {
			// Failover: the provider must see a refresh before anything can lapse.
			at := now.Add(time.Duration(mrand.Int64N(int64(time.Second))))
			e.rec.NextAction, e.rec.NextActionAt = registration.ActionRefresh, at
			r.sched.at(d.t.Ref, at)
			// Its outcome, within a second, shows the new owner: no record write
			// before it (half the writes of a failover, and no wait for them).
			e.claiming = false
			from[prev]++
			r.log.Debug("trunk taken over from a replica that left", "trunk", d.t.Ref, "from", prev, "fence", fence)
		}
	}
	// Write the new owner and fence at once, so every replica's control API shows who
	// holds each trunk now (the next REGISTER may be minutes away; a trunk taken over
	// from a replica that died is refreshed at once and shown by that outcome).
	// Only bindings that already had a record (a fresh trunk has nothing to show yet);
	// their workers wait for this write, so it never overwrites a newer outcome.
	taken := make([]registration.Record, 0, len(claimed))
	for _, ref := range claimed {
		if e := r.entries[ref]; e != nil && e.claiming {
			taken = append(taken, e.rec)
		}
	}
	r.mu.Unlock()
	refused, err := r.writeRecords(ctx, taken)
	r.mu.Lock()
	for _, rec := range taken {
		if e := r.entries[rec.TrunkRef]; e != nil {
			e.claiming = false
		}
	}
	r.mu.Unlock()
	if err == nil {
		r.lose(refused)
	}
	for prev, n := range from {
		r.log.Info("trunks taken over from a replica that left", "from", prev, "count", n)
	}
	for _, k := range due {
		r.sched.cancel(k)
		r.queue.add(k)
	}
}

// getMany reads the records of refs (those it could read: a failure leaves the rest
// to be started anew, as a store that lost them would).
func (r *Reconciler) getMany(ctx context.Context, refs []string) map[string]registration.Record {
	recs, err := r.st.GetMany(ctx, refs)
	if err != nil {
		r.log.Debug("reading claimed trunks' records failed", "err", err, "read", len(recs), "trunks", len(refs))
	}
	return recs
}

// leaseLoop renews this replica's leases every third of the lease TTL, drops the ones
// lost, and claims trunks that became this replica's (members left or joined).
//
// After the members change, trunks that could not be claimed yet (the lease of a
// replica that died has not run out, or a replica handing over has not released) are
// tried again every claimRetry, not only at the next renewal, for a lease TTL and a
// renewal period: the takeover follows the lease's expiry closely.
func (r *Reconciler) leaseLoop(ctx context.Context) {
	ttl := r.coord.LeaseTTL()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	retry := make(chan struct{}, 1)
	var changedAt time.Time
	for {
		membersChanged, renew := false, true
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.coord.MembersChanged():
			membersChanged, changedAt = true, r.clock()
		case <-retry:
			renew = false
		}
		rctx, span := startSpan(ctx, r.tracer, "registry.lease.round")
		var lost []string
		var renewErr error
		if renew {
			if lost, renewErr = r.coord.Renew(rctx); renewErr != nil {
				r.log.Debug("lease renewal failed", "err", renewErr)
			}
			r.lose(r.reclaim(rctx, lost))
		}
		r.mu.Lock()
		set, have, unclaimed := r.desiredSet, r.haveDesired, r.unclaimed
		r.mu.Unlock()
		reassign := have && (membersChanged || unclaimed > 0 || len(lost) > 0) && r.reassigning.CompareAndSwap(false, true)
		endLeaseRound(span, renew, membersChanged, len(lost), renewErr, reassign)
		if reassign {
			soon := r.clock().Sub(changedAt) < ttl+ttl/3
			// Claims may take a while at scale: renewals must go on meanwhile.
			actx, aspan := startSpan(rctx, r.tracer, "registry.reassign")
			go func() {
				defer r.reassigning.Store(false)
				defer aspan.End()
				r.reconcileDesired(actx, set)
				r.mu.Lock()
				left := r.unclaimed
				r.mu.Unlock()
				if left > 0 && soon {
					time.AfterFunc(claimRetry(ttl), func() {
						select {
						case retry <- struct{}{}:
						default:
						}
					})
				}
			}()
		}
	}
}

// claimRetry is how often trunks not claimed yet are tried again after the members
// change: a twentieth of the lease TTL (500 ms at the default 10 s).
func claimRetry(ttl time.Duration) time.Duration { return ttl / 20 }

// reclaim tries to take back leases this replica lost and returns those another replica
// holds. A lease can vanish without a new owner (Redis restarted empty, or cut off past
// the TTL while nobody took over): then this replica's memory is the freshest state of
// the binding, so it keeps it and writes it back.
func (r *Reconciler) reclaim(ctx context.Context, lost []string) []string {
	if len(lost) == 0 {
		return nil
	}
	me := r.coord.ID()
	// Whatever this replica held, it takes back if nobody else did: a hand-over to the
	// rendezvous owner, if another, follows the normal way, with the record written.
	got, err := r.coord.Claim(ctx, lost)
	if err != nil || len(got) == 0 {
		return lost
	}
	// Leases vanished without a new owner: Redis lost them (a restart). Every replica
	// takes its own back within a third of the TTL; until then, claiming anything else
	// could take a binding whose record is gone too and start it anew.
	r.mu.Lock()
	r.claimHold = r.clock().Add(r.coord.LeaseTTL())
	r.mu.Unlock()
	back := make([]string, 0, len(got))
	for ref := range got {
		back = append(back, ref)
	}
	r.continueStored(ctx, back)
	var gone []string
	var recs []registration.Record
	r.mu.Lock()
	for _, ref := range lost {
		fence, ok := got[ref]
		e := r.entries[ref]
		if !ok || e == nil {
			gone = append(gone, ref)
			continue
		}
		e.rec.Owner, e.rec.Fence = me, fence
		recs = append(recs, e.rec)
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
	if len(refs) == 0 || r.coord == nil {
		return
	}
	r.mu.Lock()
	for _, ref := range refs {
		// Not a removal for watchers: the new owner's write of the trunk reaches
		// them through the change feed.
		delete(r.entries, ref)
	}
	r.mu.Unlock()
	for _, ref := range refs {
		r.sched.cancel(ref)
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
	delete(r.entries, key)
	r.mu.Unlock()
	r.sched.cancel(key)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.coord.Release(rctx, []string{key}); err != nil {
		r.log.Debug("lease release failed; it will expire", "trunk", key, "err", err)
	}
}

// releaseAll hands every trunk over at shutdown, without unregistering.
func (r *Reconciler) releaseAll(ctx context.Context) {
	refs := make([]string, 0)
	for ref := range r.coord.Held() {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.coord.MarkLeaving(rctx); err != nil {
		r.log.Warn("cannot tell the other replicas this one is leaving; they will refresh its trunks at once", "err", err)
	}
	if err := r.coord.Release(rctx, refs); err != nil {
		r.log.Warn("releasing leases at shutdown failed; they will expire", "err", err)
		return
	}
	r.log.Info("leases released for the other replicas", "count", len(refs))
}

// lastReplica reports whether no other replica is alive (always true with one).
func (r *Reconciler) lastReplica() bool {
	if r.coord == nil {
		return true
	}
	for _, m := range r.coord.Members() {
		if m.ID != r.coord.ID() {
			return false
		}
	}
	return true
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

// mayAct reports whether this replica may send for ref now, and with which fence.
func (r *Reconciler) mayAct(ref string) (int64, bool) {
	if r.coord == nil {
		return 0, true
	}
	return r.coord.Valid(ref)
}
