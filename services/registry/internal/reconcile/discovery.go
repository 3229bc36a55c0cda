package reconcile

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/proto"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/progress"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/trunk"
	"sipreg.dev/services/registry/internal/upstream"
)

// desiredTrunk is one trunk of the desired set, parsed once.
type desiredTrunk struct {
	t   trunk.Trunk
	err error
}

// discoverLoop calls FindBy now and then every registerInterval; calls never overlap.
// With several replicas it first waits a third of the lease TTL, so that replicas
// started together see each other before they claim trunks.
func (r *Reconciler) discoverLoop(ctx context.Context) {
	if wait := r.own.FirstWait(); wait > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	t := time.NewTicker(r.spec.RegisterInterval)
	defer t.Stop()
	for {
		r.discover(ctx)
		next := t.C
		if _, known := r.lastDesired(); r.coord != nil && !known {
			// A follower started before the leader published: it asks again every
			// followerPoll, not a whole registerInterval later.
			next = time.After(followerPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-next:
		}
	}
}

// followerPoll is how often a replica that knows no desired set yet asks for the one
// the discovery leader publishes.
const followerPoll = time.Second

// discover applies one desired set. A failed fetch changes nothing.
func (r *Reconciler) discover(ctx context.Context) {
	ctx, span := startSpan(ctx, r.tracer, "registry.discover")
	defer span.End()
	set, ok := r.fetchDesired(ctx)
	if !ok {
		return
	}
	r.reconcileDesired(ctx, set)
	r.mu.Lock()
	sum, n := r.pendingSum, r.pendingLen
	r.pendingSum = 0
	r.mu.Unlock()
	if sum != 0 {
		r.answerSum.Store(sum)
		r.answerLen.Store(n)
	}
}

// findBy calls the API and reports the outcome (logged once per outage). unchanged is
// true when the answer is byte for byte the last one applied: nothing to do.
func (r *Reconciler) findBy(ctx context.Context) (items []*trunksv2beta1.Trunk, unchanged, ok bool) {
	var sum uint64
	raw, err := r.api.FindRegisteringRaw(ctx)
	if err == nil {
		sum = xxhash.Sum64(raw)
		if r.answerSum.Load() == sum && sum != 0 {
			unchanged = true
		} else {
			var skipped []upstream.SkippedItem
			var uerr error
			items, skipped, uerr = upstream.DecodeFindBy(raw)
			if uerr != nil {
				err = fmt.Errorf("trunks findBy: unreadable answer: %w", uerr)
			}
			items = r.keepUndecodable(items, skipped)
		}
	}
	if ctx.Err() != nil {
		return nil, false, false
	}
	n := len(items)
	if unchanged {
		n = int(r.answerLen.Load())
	}
	r.obs.Discovery(n, err)
	traceDiscovery(ctx, n, unchanged, err)
	r.discoveries.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if !r.apiDown {
			r.log.Warn("trunk discovery failed; keeping every known registration", "err", err)
		}
		r.apiDown = true
		return nil, false, false
	}
	if r.apiDown {
		r.apiDown = false
		r.log.Info("trunk discovery recovered", "trunks", n)
	}
	if !unchanged {
		// Remembered only once applied: see reconcileDesired's caller.
		r.pendingSum, r.pendingLen = sum, int64(n)
	}
	return items, unchanged, true
}

// parseDesired turns an API answer into the desired set (duplicates and refless
// trunks dropped).
func (r *Reconciler) parseDesired(items []*trunksv2beta1.Trunk) []desiredTrunk {
	seen := make(map[string]bool, len(items))
	out := make([]desiredTrunk, 0, len(items))
	for _, p := range items {
		t, err := trunk.FromProto(p)
		if t.Ref == "" {
			r.log.Warn("trunk without a usable ref ignored", "err", err)
			continue
		}
		if why, bad := r.undecodable[t.Ref]; bad {
			err = fmt.Errorf("%w: %s: undecodable API data: %s", trunk.ErrInvalid, t.Ref, why)
		}
		if seen[t.Ref] {
			continue
		}
		seen[t.Ref] = true
		out = append(out, desiredTrunk{t: t, err: err})
	}
	return out
}

// reconcileDesired brings the entries in line with a desired set: new trunks are
// scheduled, changed ones replaced, gone ones unregistered. With several replicas only
// the trunks this replica owns are kept; the rest are claimed or handed over.
func (r *Reconciler) reconcileDesired(ctx context.Context, set []desiredTrunk) {
	r.desiredMu.Lock()
	defer r.desiredMu.Unlock()
	now := r.clock()
	seen := make(map[string]bool, len(set))
	var due, handovers []string
	var claims, firsts []int
	spread := 0 // trunks whose first REGISTER this pass spreads
	counts := newDesiredCounts(ctx)
	r.mu.Lock()
	// Kept to re-assign trunks when members come and go, and for the control API.
	r.desiredSet, r.haveDesired = set, true
	for i, d := range set {
		seen[d.t.Ref] = true
		e, tracked := r.entries[d.t.Ref]
		mine := r.own.Mine(d.t.Ref)
		switch {
		case !tracked && mine:
			claims = append(claims, i)
			continue
		case !tracked:
			continue
		case !mine:
			if !e.handover {
				e.handover = true
				handovers = append(handovers, d.t.Ref)
			}
			continue
		}
		if e.first {
			// Applied below, once the pass knows how many first REGISTERs it spreads.
			firsts = append(firsts, i)
			if !keepsTime(e.rec, now) {
				spread++
			}
			continue
		}
		if k := r.apply(d.t, d.err, now, 0); k != "" {
			due = append(due, k)
			counts.changed++
		}
	}
	window := r.startupWindow(spread + len(claims))
	for _, i := range firsts {
		d := set[i]
		if k := r.apply(d.t, d.err, now, window); k != "" {
			due = append(due, k)
			counts.changed++
		}
	}
	for ref, e := range r.entries {
		if !seen[ref] && e.wanted {
			counts.removed++
			e.wanted = false
			r.log.Info("trunk no longer registered by the API; unregistering", "trunk", ref)
			due = append(due, ref)
		} else if !seen[ref] && !e.valid && e.rec.State != registration.StateUnregistering {
			// Loaded from the cache, never wanted in this run: remove what may remain.
			due = append(due, ref)
		}
	}
	r.mu.Unlock()
	for _, k := range append(due, handovers...) {
		r.sched.Cancel(k)
		r.queue.Add(k)
	}
	if len(claims) >= progress.Min {
		// Before the claim: its trunks' first REGISTERs go out as soon as it queues them.
		r.quietFirst.Store(true)
	}
	took, added := r.claim(ctx, set, claims, now, window)
	counts.added += added
	counts.toClaim = len(claims) - took
	counts.record(ctx)
}

// apply merges one discovered trunk into its entry (r.mu held). It returns the key when
// the trunk needs work now. window is the startup spread of the pass (startupWindow),
// for a trunk's first REGISTER in this run.
func (r *Reconciler) apply(t trunk.Trunk, terr error, now time.Time, window time.Duration) string {
	e := r.entries[t.Ref]
	if e == nil {
		e = &entry{first: true}
		r.entries[t.Ref] = e
	}
	e.wanted = true
	if terr != nil {
		// Bad API data: visible as rejected with the reason; re-read at every discovery.
		e.valid = false
		if e.rec.TrunkRef == "" {
			e.rec = registration.Record{TrunkRef: t.Ref}
		}
		if e.rec.LastError != terr.Error() {
			r.log.Warn("trunk data unusable", "trunk", t.Ref, "err", terr)
			e.rec.TrunkName = t.Name
			e.rec.State = registration.StateRejected
			e.rec.LastError = terr.Error()
			e.rec.NextAction = registration.ActionNone
			e.rec.NextActionAt = time.Time{}
			e.rec.UpdatedAt = now
			r.publishLocked(e.rec, false)
		}
		return ""
	}
	if e.valid && !e.first && e.rec.CallID != "" && e.trunk.Equal(t) {
		// The usual discovery tick: nothing changed (no hashing, no new strings kept).
		e.wanted = true
		return ""
	}
	fp := t.Fingerprint()
	changed := e.valid && e.rec.Fingerprint != fp || !e.valid && e.rec.Fingerprint != "" && e.rec.Fingerprint != fp
	// Unusable API data that became usable again: register now.
	repaired := !e.valid && !e.first && e.rec.State == registration.StateRejected && e.rec.NextActionAt.IsZero()
	if len(t.Warnings) > 0 && !slices.Equal(e.trunk.Warnings, t.Warnings) {
		// Once per change: a URI dropped for bad data, all URIs disabled (Routr's
		// file data server leaves enabled false when a file omits it), a name cleaned.
		r.log.Warn("trunk data partly unusable", "trunk", t.Ref, "warnings", t.Warnings)
	}
	e.trunk, e.valid = t, true
	e.rec.TrunkRef, e.rec.TrunkName = t.Ref, t.Name
	if e.uriIdx >= len(t.URIs) {
		e.uriIdx = 0
	}
	if changed {
		if hadBinding(e.rec) {
			old := e.rec
			e.old = &old
		}
		r.log.Info("trunk changed; replacing its binding", "trunk", t.Ref)
		e.newBinding(r.freshRecord(t))
		e.rec.Fingerprint = fp
		return t.Ref
	}
	if e.rec.CallID == "" {
		e.newBinding(r.freshRecord(t))
	}
	e.rec.Fingerprint = fp
	if e.first {
		e.first = false
		r.scheduleFirst(e, now, window)
	} else if repaired {
		e.rec.LastError = ""
		return t.Ref
	}
	return ""
}

// keepUndecodable reports the items of an API answer that could not be decoded, one
// line each; the answer's other trunks go on. An item whose ref could still be read
// stays in the desired set as a placeholder (rejected with the reason, see
// parseDesired), so a trunk whose data turned bad is neither unregistered as gone nor
// sent.
func (r *Reconciler) keepUndecodable(items []*trunksv2beta1.Trunk, skipped []upstream.SkippedItem) []*trunksv2beta1.Trunk {
	r.undecodable = nil
	for _, s := range skipped {
		r.log.Warn("trunk discovery: an item of the answer cannot be decoded; skipped", "item", s.String())
		if s.Ref == "" {
			continue
		}
		if r.undecodable == nil {
			r.undecodable = map[string]string{}
		}
		r.undecodable[s.Ref] = s.Err.Error()
		items = append(items, &trunksv2beta1.Trunk{Ref: s.Ref, SendRegister: true})
	}
	return items
}

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
