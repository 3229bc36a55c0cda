package reconcile

import (
	"context"
	"maps"
	"time"

	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/progress"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/upstream"
)

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
		if r.src.Polling() {
			// A follower started before the leader published: it asks again every
			// desired.FollowerPoll, not a whole registerInterval later.
			next = time.After(desired.FollowerPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-next:
		}
	}
}

// discover applies one desired set. A failed fetch changes nothing.
func (r *Reconciler) discover(ctx context.Context) {
	ctx, span := startSpan(ctx, r.tracer, "registry.discover")
	defer span.End()
	set, ok := r.src.Fetch(ctx)
	if !ok {
		return
	}
	added := r.reconcileDesired(ctx, set)
	r.src.Applied()
	if added >= r.collectAfter {
		// A big start (or addition) leaves its transient behind: the decoded answer and
		// the pass's own slices and maps, about a third as much again as the entries
		// it added. A collection now sets the heap goal from the entries alone; left to
		// itself, a cycle that marks while the pass still runs doubles the transient
		// too, and the peak RSS of a 100,000-trunk start is 160-176 MiB instead of
		// 132-140 (README, Performance). set is dead here (one replica does not keep it).
		r.collect()
	}
}

// collectAfter is how many trunks one pass must add for discover to collect the
// garbage it leaves (Reconciler.collectAfter; tests lower it).
const collectAfter = 10_000

// newSource returns the desired-set source of this engine, asking api.
func (r *Reconciler) newSource(api upstream.Trunks) *desired.Source {
	return desired.New(desired.Options{API: api, Coord: r.coord, LeaseTTL: 2*r.spec.RegisterInterval + r.spec.APITimeout,
		Log: r.log, Observe: r.obs.Discovery})
}

// reconcileDesired brings the entries in line with a desired set: new trunks are
// scheduled, changed ones replaced, gone ones unregistered. With several replicas only
// the trunks this replica owns are kept; the rest are claimed or handed over. It
// returns how many trunks it added.
func (r *Reconciler) reconcileDesired(ctx context.Context, set []desired.Trunk) int {
	r.desiredMu.Lock()
	defer r.desiredMu.Unlock()
	now := r.clock()
	seen := make(map[string]bool, len(set))
	var due, handovers []string
	var claims, firsts []int
	spread := 0 // trunks whose first REGISTER this pass spreads
	counts := newDesiredCounts(ctx)
	r.mu.Lock()
	for i, d := range set {
		seen[d.Trunk.Ref] = true
		e, tracked := r.entries[d.Trunk.Ref]
		mine := r.own.Mine(d.Trunk.Ref)
		switch {
		case !tracked && mine:
			claims = append(claims, i)
			continue
		case !tracked:
			continue
		case !mine:
			if !e.handover {
				e.handover = true
				handovers = append(handovers, d.Trunk.Ref)
			}
			continue
		}
		if e.first {
			// Applied below, once the pass knows how many first REGISTERs it spreads.
			firsts = append(firsts, i)
			if !keepsTime(e.record(), now) {
				spread++
			}
			continue
		}
		if k := r.apply(d, now, 0); k != "" {
			due = append(due, k)
			counts.changed++
		}
	}
	window := r.startupWindow(spread + len(claims))
	for _, i := range firsts {
		d := set[i]
		if k := r.apply(d, now, window); k != "" {
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
		} else if !seen[ref] && !e.valid && e.rec.State() != registration.StateUnregistering {
			// Loaded from the cache, never wanted in this run: remove what may remain.
			due = append(due, ref)
		}
	}
	if len(claims) > len(r.entries) {
		// A big addition (a start): the map is made at its new size at once rather than
		// grown by doublings, each of which rehashes what it holds and leaves the old
		// table behind.
		grown := make(map[string]*entry, len(r.entries)+len(claims))
		maps.Copy(grown, r.entries)
		r.entries = grown
	}
	r.mu.Unlock()
	r.cancelAndQueue(append(due, handovers...))
	if len(claims) >= progress.Min {
		// Before the claim: its trunks' first REGISTERs go out as soon as it queues them.
		r.quietFirst.Store(true)
	}
	if len(claims) >= progress.Min || counts.changed >= progress.Min {
		r.progressDue.Store(true)
	}
	took, added := r.claim(ctx, set, claims, now, window)
	counts.added += added
	counts.toClaim = len(claims) - took
	counts.record(ctx)
	return added
}

// apply merges one discovered trunk into its entry (r.mu held). It returns the key when
// the trunk needs work now. window is the startup spread of the pass (startupWindow),
// for a trunk's first REGISTER in this run.
func (r *Reconciler) apply(d desired.Trunk, now time.Time, window time.Duration) string {
	t, terr := d.Trunk, d.Err
	e := r.entries[t.Ref]
	if e == nil {
		e = &entry{first: true}
		r.entries[t.Ref] = e
	}
	e.wanted = true
	if terr != nil {
		// Bad API data: visible as rejected with the reason; re-read at every discovery.
		e.valid = false
		if e.trunk.Ref == "" {
			e.setRecord(registration.Record{TrunkRef: t.Ref})
		}
		if e.rec.LastError() != terr.Error() {
			r.log.Warn("trunk data unusable", "trunk", t.Ref, "err", terr)
			rec := e.record()
			rec.TrunkName = t.Name
			rec.State = registration.StateRejected
			rec.LastError = terr.Error()
			rec.NextAction = registration.ActionNone
			rec.NextActionAt = time.Time{}
			rec.UpdatedAt = now
			e.setRecord(rec)
			r.publishLocked(rec, false)
		}
		return ""
	}
	if e.valid && !e.first && e.rec.CallID() != "" && e.trunk.Equal(t) {
		// The usual discovery tick: nothing changed (no hashing, no new strings kept).
		e.wanted = true
		return ""
	}
	fp := t.Fingerprint()
	changed := e.valid && e.rec.Fingerprint() != fp || !e.valid && e.rec.Fingerprint() != "" && e.rec.Fingerprint() != fp
	// Unusable API data that became usable again: register now.
	repaired := !e.valid && !e.first && e.rec.State() == registration.StateRejected && e.rec.NextActionAt().IsZero()
	if len(d.Warnings) > 0 {
		// When the trunk is first seen and whenever its usable data changes (the
		// entry does not keep the warnings: 24 bytes a trunk): a URI dropped for bad
		// data, all URIs disabled (Routr's file data server leaves enabled false when
		// a file omits it), a name cleaned.
		r.log.Warn("trunk data partly unusable", "trunk", t.Ref, "warnings", d.Warnings)
	}
	e.trunk, e.valid = t, true // packed by trunk.FromProto: its strings in one allocation
	if int(e.uriIdx) >= len(t.URIs) {
		e.uriIdx = 0
	}
	if changed {
		if old := e.record(); hadBinding(old) {
			e.extra().old = &old
		}
		r.log.Info("trunk changed; replacing its binding", "trunk", t.Ref)
		e.newBinding(r.freshRecord(e.trunk, fp))
		return t.Ref
	}
	if e.rec.CallID() == "" {
		e.newBinding(r.freshRecord(e.trunk, fp))
	}
	rec := e.record()
	rec.TrunkRef, rec.TrunkName, rec.Fingerprint = e.trunk.Ref, e.trunk.Name, fp
	if repaired && !e.first {
		rec.LastError = ""
	}
	e.setRecord(rec)
	if e.first {
		e.first = false
		r.scheduleFirst(e, now, window)
	} else if repaired {
		return t.Ref
	}
	return ""
}
