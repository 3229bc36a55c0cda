package reconcile

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/trunk"
)

// syncKey brings one trunk in line: remove a replaced binding, unregister an unwanted
// trunk, or register a wanted one; then schedule what comes next.
func (r *Reconciler) syncKey(ctx context.Context, key string) {
	r.mu.Lock()
	e := r.entries[key]
	if e == nil {
		r.mu.Unlock()
		return
	}
	var target targetKey
	if e.valid && len(e.trunk.URIs) > 0 {
		target = keyOf(e.trunk.URIs[int(e.uriIdx)%len(e.trunk.URIs)])
	} else {
		target = parseTarget(e.rec.Target())
	}
	if r.targets[target] >= r.perTargetCap() {
		// Fairness: one slow provider may hold only its share of the workers.
		r.parked[target] = append(r.parked[target], key)
		r.mu.Unlock()
		return
	}
	if e.handover {
		r.mu.Unlock()
		r.handOver(ctx, key, e)
		return
	}
	if e.claiming {
		r.mu.Unlock()
		r.sched.At(e, r.clock().Add(100*time.Millisecond))
		return
	}
	if _, ok := r.own.Valid(key); !ok {
		// The lease ran out by this replica's clock: send nothing; the lease loop
		// renews it or hands the trunk over.
		r.mu.Unlock()
		r.sched.At(e, r.clock().Add(time.Second))
		return
	}
	r.targets[target]++
	waiters := e.takeWaiters()
	e.forcePending = false
	if len(waiters) > 0 {
		e.more.forcedAt = r.clock()
	}
	e.inflight = e.wanted && e.valid
	old := e.takeOld()
	wanted, valid := e.wanted, e.valid
	t, rec, uriIdx, epIdx := e.trunk, e.record(), int(e.uriIdx), int(e.epIdx)
	gen := rec.CallID
	r.mu.Unlock()
	defer r.releaseTarget(target)

	if old != nil {
		r.unregister(ctx, t, *old, *old)
	}
	if !wanted {
		if hadBinding(rec) {
			base := rec
			rec.State = registration.StateUnregistering
			rec.NextAction = registration.ActionUnregister
			r.update(key, e, gen, rec, uriIdx, epIdx, nil)
			r.unregister(ctx, t, rec, base)
		}
		r.remove(ctx, key, e)
		rec.State = registration.StateUnregistered
		notify(waiters, rec)
		return
	}
	if !valid {
		notify(waiters, rec)
		return
	}
	rec, uriIdx, epIdx = r.register(ctx, key, e, gen, t, rec, uriIdx, epIdx)
	r.update(key, e, gen, rec, uriIdx, epIdx, waiters)
}

func notify(waiters []chan registration.Record, rec registration.Record) {
	for _, w := range waiters {
		w <- rec
	}
}

// targetOf is the registrar a REGISTER through u goes to: host:port, 5060 when the
// URI names no port.
func targetOf(u trunk.URI) string {
	return net.JoinHostPort(u.Host, strconv.Itoa(portOr5060(u.Port)))
}

// isTargetOf reports whether s is targetOf(u), without building it (a REGISTER's
// record usually holds it already). A string that reads as the same host and port and
// is as long as targetOf's is targetOf's: another spelling of the port (a sign, a
// leading zero) or of the host (brackets) changes the length.
func isTargetOf(s string, u trunk.URI) bool {
	k := keyOf(u)
	n := len(k.host) + 1
	if strings.Contains(k.host, ":") {
		n += 2 // net.JoinHostPort's brackets
	}
	var digits [20]byte
	n += len(strconv.AppendInt(digits[:0], int64(k.port), 10))
	return len(s) == n && parseTarget(s) == k
}

// targetKey is a registrar, as the per-registrar slots count it: targetOf's host and
// port, held without building the string (the host is the trunk's own).
type targetKey struct {
	host string
	port int
}

func keyOf(u trunk.URI) targetKey { return targetKey{u.Host, portOr5060(u.Port)} }

// parseTarget is the key of a record's target (targetOf's form); one that cannot be
// read is its own key.
func parseTarget(s string) targetKey {
	host, port, err := net.SplitHostPort(s)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		return targetKey{host: s, port: -1}
	}
	return targetKey{host, p}
}

func portOr5060(p int) int {
	if p == 0 {
		return 5060
	}
	return p
}

func (r *Reconciler) perTargetCap() int {
	return max(1, r.spec.MaxInFlight/4)
}

func (r *Reconciler) releaseTarget(target targetKey) {
	r.mu.Lock()
	r.targets[target]--
	if r.targets[target] <= 0 {
		delete(r.targets, target)
	}
	var next string
	if p := r.parked[target]; len(p) > 0 {
		next = p[0]
		if len(p) == 1 {
			delete(r.parked, target)
		} else {
			r.parked[target] = p[1:]
		}
	}
	r.mu.Unlock()
	if next != "" {
		r.queue.Add(next)
	}
}

// update stores the outcome of a sync in the entry (unless the trunk's binding was
// replaced meanwhile), persists it, tells watchers and schedules the next action.
func (r *Reconciler) update(key string, e *entry, gen string, rec registration.Record, uriIdx, epIdx int, waiters []chan registration.Record) {
	r.mu.Lock()
	inFlight := rec.State == registration.StateRegistering || rec.State == registration.StateUnregistering
	if e.gone || e.rec.CallID() != gen {
		cur := r.entries[key]
		if !inFlight {
			e.inflight = false
		}
		// The trunk changed while the REGISTER was in flight: this binding is the old one.
		if cur != nil && hadBinding(rec) && (cur.more == nil || cur.more.old == nil) && rec.CallID != cur.rec.CallID() {
			// (The same Call-ID is the live binding, taken back by this replica
			// meanwhile: never unregistered as an old one.)
			old := rec
			cur.extra().old = &old
		}
		r.mu.Unlock()
		notify(waiters, rec)
		r.queue.Add(key)
		return
	}
	was := e.record()
	rec.Fingerprint, rec.TrunkName = was.Fingerprint, was.TrunkName
	if was.Fence > rec.Fence {
		// The lease was taken again meanwhile (a new fence): the record says so.
		rec.Owner, rec.Fence = was.Owner, was.Fence
	}
	// A write confirmed meanwhile may have raised the binding's CSeq ceiling.
	rec.CSeqCeiling = max(rec.CSeqCeiling, was.CSeqCeiling)
	e.setRecord(rec)
	e.uriIdx, e.epIdx = int32(uriIdx), int32(epIdx)
	r.publishLocked(rec, false)
	if !inFlight && !r.durable {
		// The memory cache's write, under the lock this update holds already.
		r.persistedLocked(e, rec)
	}
	var riders []chan registration.Record
	if !inFlight && e.inflight {
		// Forces that came while the REGISTER was in flight take its outcome: they
		// coalesce, and send nothing more.
		e.inflight = false
		riders = e.takeWaiters()
	}
	// Forces still waiting need a sync of their own, unless this is the in-flight
	// state of a REGISTER they ride: its outcome's update hands it to them.
	again := len(e.waiters()) > 0 && !(inFlight && e.inflight)
	r.mu.Unlock()
	notify(waiters, rec)
	notify(riders, rec)
	if !rec.NextActionAt.IsZero() && !inFlight {
		r.sched.At(e, rec.NextActionAt)
	}
	if again {
		r.queue.Add(key)
	}
	if !inFlight && r.durable {
		// In-flight states are published, not written: the outcome is written next.
		r.persist(key, rec)
	}
}

// forgetLocked takes e, the entry of key, out of the engine (r.mu held). An entry
// leaves r.entries only here, so e.gone tells whether it is still key's entry.
func (r *Reconciler) forgetLocked(key string, e *entry) {
	delete(r.entries, key)
	e.gone = true
}

// remove forgets a trunk after its binding was removed.
func (r *Reconciler) remove(ctx context.Context, key string, e *entry) {
	r.mu.Lock()
	if r.entries[key] != e || e.wanted {
		r.mu.Unlock()
		return
	}
	r.forgetLocked(key, e)
	rec := e.record()
	rec.State = registration.StateUnregistered
	r.mu.Unlock()
	r.sched.Cancel(e)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	delErr := r.st.Delete(dctx, key)
	if delErr != nil {
		r.storeFailed(delErr)
	}
	if r.coord != nil && delErr == nil {
		// Other replicas' mirrors drop the record too (when the delete failed, it
		// stays until its TTL, there as here).
		if err := r.coord.PublishDeleted(dctx, []string{key}); err != nil {
			r.log.Debug("publishing a removal failed; other replicas' watchers miss it", "trunk", key, "err", err)
		}
	}
	r.own.Release(dctx, []string{key})
	r.mu.Lock()
	r.publishLocked(rec, true)
	r.mu.Unlock()
}

// entriesOf answers the entries of keys (of those that have one); with forget, it
// takes them out of the engine too (forgetLocked).
func (r *Reconciler) entriesOf(keys []string, forget bool) []*entry {
	es := make([]*entry, 0, len(keys))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if e := r.entries[k]; e != nil {
			es = append(es, e)
			if forget {
				r.forgetLocked(k, e)
			}
		}
	}
	return es
}

// cancelAndQueue queues keys for a sync now, cancelling what was scheduled for them.
func (r *Reconciler) cancelAndQueue(keys []string) {
	if len(keys) == 0 {
		return
	}
	for _, e := range r.entriesOf(keys, false) {
		r.sched.Cancel(e)
	}
	for _, k := range keys {
		r.queue.Add(k)
	}
}
