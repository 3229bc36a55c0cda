package reconcile

import (
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/trunk"
	"sipreg.dev/services/registry/internal/workqueue"
)

// entry is one trunk as the reconciler tracks it; guarded by Reconciler.mu (but its
// timer). One lives per trunk, so it is kept small: the record compact
// (registration.Compact, the trunk's ref and name kept once, in the trunk), what only
// a forced or changed trunk needs behind a pointer, no warnings (trunk.Read's are
// logged, not kept), its place in the schedule (no map of due times beside it): 288
// bytes in all (a size class of Go's allocator; TestEntrySize holds it), against 640
// with a full registration.Record and the trunk's own copies.
type entry struct {
	trunk trunk.Trunk
	rec   registration.Compact
	more  *entryMore // nil until a Force or a change of the trunk needs it
	// timer is the entry's place in Reconciler.sched (guarded by the schedule's lock).
	timer  workqueue.Timer
	uriIdx int32
	epIdx  int32
	// cseqTried: the highest CSeq ceiling any write of the binding carried (see cseq.go).
	cseqTried uint32
	valid     bool
	wanted    bool
	dirty     bool // not yet persisted (store unreachable)
	// first is set until the first REGISTER of this trunk in this process.
	first bool
	// handover: another replica owns the trunk now; release it without unregistering.
	handover bool
	// claiming: the record of a trunk just claimed is being written; its worker waits.
	claiming bool
	// inflight: a REGISTER exchange of this trunk runs; a Force joins its outcome.
	inflight bool
	// forcePending: a forced sync is queued or scheduled; further forces wait for it.
	forcePending bool
	// cseqFree: the binding's Call-ID was never written anywhere, so its CSeq needs no
	// reservation (see cseq.go).
	cseqFree bool
	// gone: the entry left r.entries (forgetLocked); a sync that still holds it
	// records nothing in it.
	gone bool
}

// entryMore is what few entries need.
type entryMore struct {
	old     *registration.Record // a binding to remove first (its trunk changed)
	waiters []chan registration.Record
	// forcedAt is when the last forced exchange started (forces are
	// spec.ForceInterval apart).
	forcedAt time.Time
}

// entryTimer is e's place in the schedule.
func entryTimer(e *entry) *workqueue.Timer { return &e.timer }

// extra is e.more, made when missing.
func (e *entry) extra() *entryMore {
	if e.more == nil {
		e.more = &entryMore{}
	}
	return e.more
}

// waiters are the forces waiting for e's next outcome.
func (e *entry) waiters() []chan registration.Record {
	if e.more == nil {
		return nil
	}
	return e.more.waiters
}

// takeWaiters answers e's waiters and forgets them.
func (e *entry) takeWaiters() []chan registration.Record {
	w := e.waiters()
	if w != nil {
		e.more.waiters = nil
	}
	return w
}

// takeOld answers the binding to remove first, if any, and forgets it.
func (e *entry) takeOld() *registration.Record {
	if e.more == nil {
		return nil
	}
	old := e.more.old
	e.more.old = nil
	return old
}

// record is e's record in full. Its ref and name are the trunk's (setRecord keeps them
// so): the record does not hold them twice.
func (e *entry) record() registration.Record { return e.rec.Record(e.trunk.Ref, e.trunk.Name) }

// setRecord makes rec e's record. The trunk takes rec's ref and name (the API's,
// or a stored record's until the API has given the trunk). Either way the ref is the
// entry's key in Reconciler.entries: the store answers no record under another trunk's
// key (store.ErrCorrupt), and the schedule finds an entry's key by it.
func (e *entry) setRecord(rec registration.Record) {
	e.rec.Set(rec)
	e.trunk.Ref, e.trunk.Name = rec.TrunkRef, rec.TrunkName
}
