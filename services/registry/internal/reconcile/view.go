package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sipreg.dev/services/registry/internal/cluster/mirror"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

// EachLocal calls f with each registration this replica holds, from memory, under the
// engine's lock (f must not call the engine): for the gauges of a scrape, which copy no
// record to the heap.
func (r *Reconciler) EachLocal(f func(registration.Record)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		f(e.record())
	}
}

// appendLocal appends this replica's records to out (r.mu held).
func (r *Reconciler) appendLocal(out []registration.Record) []registration.Record {
	for _, e := range r.entries {
		out = append(out, e.record())
	}
	return out
}

// Records returns every registration known: from memory with one replica; with
// several, every replica's (from the cluster mirror), this replica's own from
// memory.
func (r *Reconciler) Records() []registration.Record {
	var shared []registration.Record
	if r.coord != nil {
		shared = r.sharedRecords()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]registration.Record, 0, len(r.entries)+len(shared))
	for _, rec := range shared {
		if _, mine := r.entries[rec.TrunkRef]; !mine {
			out = append(out, rec)
		}
	}
	return r.appendLocal(out)
}

// Page is the keyset page of the registrations Records lists: up to size records
// whose trunk ref sorts after after and whose state keep accepts (nil: any), by ref,
// and whether more follow. Of this replica's own, only the page's records are
// copied; the others are compared by ref and state alone (at 100,000 trunks a page
// copied and sorted every record before).
func (r *Reconciler) Page(after string, keep func(registration.State) bool, size int) ([]registration.Record, bool) {
	var shared []registration.Record
	if r.coord != nil {
		shared = r.sharedRecords()
	}
	type candidate struct {
		e   *entry
		rec *registration.Record
	}
	sel := registration.NewPageSelector[candidate](after, size)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range shared {
		rec := &shared[i]
		if _, mine := r.entries[rec.TrunkRef]; !mine && (keep == nil || keep(rec.State)) {
			sel.Offer(rec.TrunkRef, candidate{rec: rec})
		}
	}
	for ref, e := range r.entries {
		if keep == nil || keep(e.rec.State()) {
			sel.Offer(ref, candidate{e: e})
		}
	}
	found, more := sel.Page()
	page := make([]registration.Record, len(found))
	for i, c := range found {
		if c.e != nil {
			page[i] = c.e.record()
		} else {
			page[i] = *c.rec
		}
	}
	return page, more
}

// sharedRecords lists every replica's records: from the mirror, started if needed;
// from the store when the mirror cannot go live (nothing when the store fails too).
func (r *Reconciler) sharedRecords() []registration.Record {
	wait, cancelWait := context.WithTimeout(context.Background(), mirror.Wait)
	live := r.mirror.Use(wait, false)
	cancelWait()
	if live {
		if recs, ok := r.mirror.Records(); ok {
			return recs
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), mirror.Wait)
	defer cancel()
	recs, err := r.st.List(ctx)
	if err != nil {
		r.log.Debug("reading every replica's records failed", "err", err)
		return nil
	}
	return recs
}

// Record returns one trunk's registration (with several replicas, from the mirror or
// the store when another replica owns it).
func (r *Reconciler) Record(ref string) (registration.Record, bool) {
	r.mu.Lock()
	e, ok := r.entries[ref]
	var rec registration.Record
	if ok {
		rec = e.record()
	}
	r.mu.Unlock()
	if ok || r.coord == nil {
		return rec, ok
	}
	if rec, found, live := r.mirror.Record(ref); live {
		return rec, found
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := r.st.Get(ctx, ref)
	return rec, err == nil
}

// ErrUnknownTrunk is returned for a ref the registry does not know.
var ErrUnknownTrunk = errors.New("unknown trunk")

// ErrStopping is returned when the registry is shutting down.
var ErrStopping = errors.New("registry is shutting down")

// Force registers ref now, skipping its schedule, and waits for the outcome. A force
// while a REGISTER of the trunk is in flight takes that one's outcome; forces of one
// trunk go out at least spec.ForceInterval apart (a loop of calls coalesces).
func (r *Reconciler) Force(ctx context.Context, ref string) (registration.Record, error) {
	if r.stopping.Load() {
		return registration.Record{}, ErrStopping
	}
	ch := make(chan registration.Record, 1)
	r.mu.Lock()
	e, ok := r.entries[ref]
	if !ok && r.coord != nil {
		r.mu.Unlock()
		return registration.Record{}, r.notOwner(ref)
	}
	if !ok || !e.wanted || !e.valid {
		var rec registration.Record
		unusable := ok && !e.valid && e.wanted
		if unusable {
			rec = e.record()
		}
		r.mu.Unlock()
		if unusable {
			return rec, fmt.Errorf("trunk %s cannot be registered: %s", ref, rec.LastError)
		}
		return registration.Record{}, fmt.Errorf("%w: %s", ErrUnknownTrunk, ref)
	}
	more := e.extra()
	more.waiters = append(more.waiters, ch)
	// Coalesce: a REGISTER in flight answers this force too (update hands it its
	// outcome); otherwise forces of one trunk go out at least ForceInterval apart.
	var at time.Time
	if !e.inflight && !more.forcedAt.IsZero() && r.spec.ForceInterval > 0 {
		at = more.forcedAt.Add(r.spec.ForceInterval)
	}
	var queue, later bool
	switch {
	case e.inflight, e.forcePending:
		// The exchange in flight, or the sync already asked for, answers it.
	case at.After(r.clock()):
		e.forcePending, later = true, true
	default:
		e.forcePending, queue = true, true
	}
	r.mu.Unlock()
	switch {
	case later:
		r.sched.At(e, at)
	case queue:
		r.sched.Cancel(e)
		r.queue.Add(ref)
	}
	select {
	case rec := <-ch:
		return rec, nil
	case <-ctx.Done():
		return registration.Record{}, ctx.Err()
	}
}

// Refs lists the trunks that are wanted now.
func (r *Reconciler) Refs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for ref, e := range r.entries {
		if e.wanted && e.valid {
			out = append(out, ref)
		}
	}
	return out
}

// Subscribe streams every change until the subscription is closed. Its queue is
// allocated as events wait (Options.WatchBacklog bounds it; a reader further behind is
// dropped with watch.ErrWatcherTooSlow, the engine never waits for it), and it ends with
// ErrStopping when the registry stops. With several replicas the stream carries every
// replica's changes: Subscribe starts the mirror and waits (bounded) until it is live,
// so that Records and Record read after it are a snapshot the stream continues.
func (r *Reconciler) Subscribe() *watch.Subscription {
	var release func()
	if r.coord != nil {
		release = r.mirror.Release
	}
	sub, ended := r.hub.Subscribe(release)
	if ended {
		return sub
	}
	if r.coord != nil {
		ctx, cancel := context.WithTimeout(context.Background(), mirror.Wait)
		if !r.mirror.Use(ctx, true) {
			r.log.Warn("watching only this replica's changes: the change feed is not live")
		}
		cancel()
	}
	return sub
}

// publishRemote tells watchers of changes made by other replicas (from the mirror),
// except to trunks this replica holds: its own entries are newer.
func (r *Reconciler) publishRemote(events []watch.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range events {
		if _, mine := r.entries[ev.Record.TrunkRef]; !mine {
			r.publishLocked(ev.Record, ev.Removed)
		}
	}
}

// publishLocked tells watchers of a change (r.mu held, so that events keep the order
// of the changes).
func (r *Reconciler) publishLocked(rec registration.Record, removed bool) {
	r.hub.Publish(watch.Event{Record: rec, Removed: removed})
}

// Discoveries counts FindBy calls made (tests, health).
func (r *Reconciler) Discoveries() int64 { return r.src.Discoveries() }

// StoreFault returns the current store error and since when (nil when healthy).
func (r *Reconciler) StoreFault() (time.Time, error) {
	if f := r.storeErr.Load(); f != nil {
		return f.since, f.err
	}
	return time.Time{}, nil
}

// APIDown reports whether the last discovery failed.
func (r *Reconciler) APIDown() bool { return r.src.APIDown() }
