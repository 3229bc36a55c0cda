package reconcile

import (
	"context"
	"errors"
	"fmt"

	"sipreg.dev/services/registry/internal/exchange"
	"sipreg.dev/services/registry/internal/groupcommit"
	"sipreg.dev/services/registry/internal/registration"
)

// How a CSeq is never used twice for one Call-ID, by anyone.
//
// A REGISTER goes on the wire only with a CSeq at or below a ceiling that is durable in
// the store (Record.CSeqCeiling). Whoever continues a binding from its stored record (this
// process after a restart, another replica after a takeover) moves past that ceiling
// (Record.TopCSeq), so it starts above every CSeq that can have been sent, even by a
// replica that was paused or cut off from Redis after its last write. RFC 3261 §10.2 asks
// only for a higher CSeq, so the jump (at most cseqBlock) is allowed.
//
// Every write of a binding's record carries a ceiling cseqBlock above its CSeq, so a
// binding that is written after each outcome never waits for a reservation; one
// continued from the store, or one that sent cseqBlock REGISTERs without a successful
// write (the store down), writes a reservation first. Ceilings never go down between
// writes of one binding (entry.cseqTried), so whichever write landed last, the stored
// ceiling covers every CSeq sent under a ceiling confirmed before.
//
// A new binding (a fresh Call-ID that was never written) needs no reservation for its
// first REGISTER: nobody else can know its Call-ID. After its first write attempt, landed
// or not, the limit is that write's ceiling.
//
// The memory cache keeps nothing across a restart, so there nothing is reserved.

// cseqBlock is how many CSeqs one write covers ahead of the binding's CSeq
// (Reconciler.cseqBlock; tests shrink it).
const cseqBlock = 100

// errNotDurable stops a REGISTER whose CSeq could not be made durable first.
var errNotDurable = exchange.NotSent("CSeq not durable in the cache")

// newBinding makes rec, a fresh binding, the entry's record (r.mu held).
func (e *entry) newBinding(rec registration.Record) {
	e.setRecord(rec)
	e.cseqFree, e.cseqTried = true, 0
}

// adopt makes rec, read from the store, the entry's record (r.mu held): it continues
// above every CSeq that can have been sent for it.
func (e *entry) adopt(rec registration.Record) {
	top := rec.TopCSeq()
	rec.CSeq, rec.CSeqCeiling = top, top
	e.setRecord(rec)
	e.cseqFree, e.cseqTried = false, top
}

// raiseCeiling brings the CSeq ceiling of e's record up to c (r.mu held).
func (e *entry) raiseCeiling(c uint32) {
	if c > e.rec.CSeqCeiling() {
		e.rec.SetCSeq(e.rec.CSeq(), c)
	}
}

// stampLocked sets the ceiling each record is written with (r.mu held): cseqBlock above
// its CSeq, and never below a ceiling written before for the same binding.
func (r *Reconciler) stampLocked(recs []registration.Record) {
	for i := range recs {
		rec := &recs[i]
		e := r.entries[rec.TrunkRef]
		if e != nil && e.rec.CallID() != rec.CallID {
			e = nil
		}
		r.stamp(e, rec)
	}
}

// stamp gives rec the ceiling its write carries; e is rec's entry, nil when rec is
// not its binding any more (r.mu held).
func (r *Reconciler) stamp(e *entry, rec *registration.Record) {
	c := max(rec.CSeqCeiling, rec.CSeq+r.cseqBlock)
	if e != nil {
		c = max(c, e.cseqTried)
		e.cseqTried = c
		if e.cseqFree {
			// From now on the store may hold this binding: its limit is the
			// ceiling of this first write, landed or not.
			e.cseqFree = false
			e.raiseCeiling(c)
		}
	}
	rec.CSeqCeiling = c
}

// confirmLocked records that recs landed, except the refused ones (r.mu held).
func (r *Reconciler) confirmLocked(recs []registration.Record, refused []string) {
	no := setOf(refused)
	for _, rec := range recs {
		if no[rec.TrunkRef] {
			continue
		}
		if e := r.entries[rec.TrunkRef]; e != nil && e.rec.CallID() == rec.CallID {
			e.raiseCeiling(rec.CSeqCeiling)
		}
	}
}

// setOf is the set of refs; nil when there are none (the usual batch: nothing refused).
func setOf(refs []string) map[string]bool {
	if len(refs) == 0 {
		return nil
	}
	set := make(map[string]bool, len(refs))
	for _, ref := range refs {
		set[ref] = true
	}
	return set
}

// covered reports whether rec's CSeq may go on the wire without a reservation; it
// brings rec's ceiling up to the entry's.
func (r *Reconciler) covered(rec *registration.Record) bool {
	if !r.durable {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[rec.TrunkRef]; e != nil && e.rec.CallID() == rec.CallID {
		rec.CSeqCeiling = max(rec.CSeqCeiling, e.rec.CSeqCeiling())
		if e.cseqFree {
			return true
		}
	}
	return rec.CSeq <= rec.CSeqCeiling
}

// reserveCSeq makes rec's CSeq durable before it is sent, when the ceiling does not
// cover it yet: the binding's record is written (its state as in base, the record
// before this exchange) with a new ceiling. A refused write means the lease is gone.
func (r *Reconciler) reserveCSeq(rec *registration.Record, base registration.Record) error {
	if r.covered(rec) {
		return nil
	}
	if _, err := r.StoreFault(); err != nil {
		return fmt.Errorf("%w: CSeq %d needs a reservation and the cache is unreachable", errNotDurable, rec.CSeq)
	}
	w := *rec
	w.State, w.NextAction, w.NextActionAt, w.UpdatedAt = base.State, base.NextAction, base.NextActionAt, base.UpdatedAt
	written, err := r.commit.Put(w)
	switch {
	case errors.Is(err, groupcommit.ErrRefused):
		return errNotOwner
	case err != nil:
		if !errors.Is(err, groupcommit.ErrStopped) {
			r.storeFailed(err)
		}
		return fmt.Errorf("%w: reserving CSeq %d: %w", errNotDurable, rec.CSeq, err)
	}
	rec.CSeqCeiling = max(rec.CSeqCeiling, written.CSeqCeiling)
	if rec.CSeq > rec.CSeqCeiling {
		return fmt.Errorf("%w: CSeq %d above the reserved %d", errNotDurable, rec.CSeq, rec.CSeqCeiling)
	}
	return nil
}

// continueStored brings bindings this replica takes back (their leases vanished) above
// what the store holds for them: another replica may have held the trunk in between
// and sent CSeqs this memory has not seen.
func (r *Reconciler) continueStored(ctx context.Context, refs []string) {
	stored, err := r.st.GetMany(ctx, refs)
	if err != nil {
		r.log.Debug("reading the records of trunks taken back failed", "err", err, "read", len(stored), "trunks", len(refs))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ref, rec := range stored {
		e := r.entries[ref]
		if e == nil || e.rec.CallID() != rec.CallID || rec.TopCSeq() <= e.rec.TopCSeq() {
			continue
		}
		top := rec.TopCSeq()
		e.rec.SetCSeq(top, top)
		e.cseqTried = max(e.cseqTried, top)
	}
}
