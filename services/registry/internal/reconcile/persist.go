package reconcile

import (
	"context"
	"errors"
	"time"

	"sipreg.dev/services/registry/internal/groupcommit"
	"sipreg.dev/services/registry/internal/registration"
)

// persist writes one trunk's record. It does not wait for the write: the group commit
// reports its outcome to written. While the store is down nothing blocks: the record is
// marked dirty and written when the store returns.
func (r *Reconciler) persist(key string, rec registration.Record) {
	if !r.durable {
		r.mu.Lock()
		if e := r.entries[key]; e != nil && e.rec.CallID() == rec.CallID {
			r.persistedLocked(e, rec)
		}
		r.mu.Unlock()
		return
	}
	if r.storeErr.Load() == nil && r.commit.Enqueue(rec) {
		return
	}
	r.markDirty(key)
}

// written is told the outcome of each record persist queued (from the group commit's
// goroutine, after the batch's write: it must not wait for the committer). Nothing the
// engine does next depends on the write having landed: a CSeq goes out only under a
// ceiling a landed write confirmed (cseq.go), and a trunk handed over meanwhile is
// continued by its new owner above the ceiling stored before.
func (r *Reconciler) written(rec registration.Record, err error) {
	switch {
	case err == nil:
	case errors.Is(err, groupcommit.ErrRefused):
		// The lease is gone: taken by another replica, or lost with Redis (a restart).
		// Take it back if nobody holds it and the binding is still this replica's;
		// this memory is then its freshest state. (Not for a trunk released meanwhile:
		// its entry is gone.)
		r.mu.Lock()
		e := r.entries[rec.TrunkRef]
		mine := e != nil && e.rec.CallID() == rec.CallID
		r.mu.Unlock()
		if mine && !r.stopping.Load() {
			go r.lose(r.reclaim(context.Background(), []string{rec.TrunkRef}))
		}
	default:
		r.storeFailed(err)
		r.markDirty(rec.TrunkRef)
	}
}

// markDirty marks key's record as not written: the store loop writes it once the
// store answers.
func (r *Reconciler) markDirty(key string) {
	r.mu.Lock()
	if e := r.entries[key]; e != nil {
		e.dirty = true
	}
	r.mu.Unlock()
}

// persistedLocked is, with the memory cache, the write of rec, e's record, that landed
// (r.mu held): the memory cache writes nowhere (no batch to share, no group commit
// window to wait out), so rec is stamped and confirmed as a write that landed would be
// (cseq.go), in place.
func (r *Reconciler) persistedLocked(e *entry, rec registration.Record) {
	r.stamp(e, &rec)
	e.raiseCeiling(rec.CSeqCeiling)
}

// storeFailed records a store fault (logged once per outage).
func (r *Reconciler) storeFailed(err error) {
	f := &storeFault{err: err, since: r.clock()}
	if r.storeErr.CompareAndSwap(nil, f) {
		r.log.Error("cache unreachable; registrations go on from memory and are written when it returns", "err", err)
		r.obs.Store(err)
	}
}

// storeLoop checks a faulty store every few seconds and, once it answers, writes every
// record that changed meanwhile.
func (r *Reconciler) storeLoop(ctx context.Context) {
	every(ctx, 2*time.Second, func() {
		f := r.storeErr.Load()
		if f == nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := r.st.Ping(pctx)
		cancel()
		if err != nil || r.flushDirty(ctx) != nil {
			return
		}
		r.storeErr.Store(nil)
		r.log.Info("cache reachable again", "down_for", r.clock().Sub(f.since).Round(time.Second).String())
		r.obs.Store(nil)
	})
}

// flushDirty writes every record not yet persisted.
func (r *Reconciler) flushDirty(ctx context.Context) error {
	r.mu.Lock()
	var recs []registration.Record
	var keys []string
	for k, e := range r.entries {
		if e.dirty {
			recs = append(recs, e.record())
			keys = append(keys, k)
		}
	}
	r.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	refused, err := r.writeRecords(wctx, recs)
	if err != nil {
		return err
	}
	r.lose(r.reclaim(wctx, refused))
	r.mu.Lock()
	for _, k := range keys {
		if e := r.entries[k]; e != nil {
			e.dirty = false
		}
	}
	r.mu.Unlock()
	return nil
}
