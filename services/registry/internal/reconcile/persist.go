package reconcile

import (
	"context"
	"errors"
	"time"

	"sipreg.dev/services/registry/internal/groupcommit"
	"sipreg.dev/services/registry/internal/registration"
)

// persist writes one trunk's record. While the store is down nothing blocks: the record
// is marked dirty and written when the store returns.
func (r *Reconciler) persist(key string, rec registration.Record) {
	if !r.durable {
		r.mu.Lock()
		if e := r.entries[key]; e != nil && e.rec.CallID() == rec.CallID {
			r.persistedLocked(e, rec)
		}
		r.mu.Unlock()
		return
	}
	if r.storeErr.Load() == nil {
		_, err := r.commit.Put(rec)
		if err == nil {
			return
		}
		if errors.Is(err, groupcommit.ErrRefused) {
			// The lease is gone: taken by another replica, or lost with Redis (a
			// restart). Take it back if nobody holds it; this memory is then the
			// freshest state of the binding.
			r.lose(r.reclaim(context.Background(), []string{key}))
			return
		}
		if !errors.Is(err, groupcommit.ErrStopped) {
			r.storeFailed(err)
		}
	}
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
