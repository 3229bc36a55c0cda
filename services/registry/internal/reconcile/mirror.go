package reconcile

import (
	"context"
	"sync"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
)

// With several replicas, the control API of each answers for every trunk. The
// mirror is its copy of every replica's records: read once from the store, then
// kept current by the changes each replica publishes in the same Lua call as its
// writes (cluster.FollowChanges). It runs only while used: while a watcher is
// subscribed, and for mirrorIdle after the last read; then it is dropped, so a
// replica nobody asks carries only its own trunks.
//
// Consistency: a change is published after it is stored, and the store is read
// only once the subscription is confirmed, with the changes that arrive during the
// read queued and applied after it in order. So the copy misses nothing from the
// moment it is live; a lost connection (whose changes are gone) makes it read the
// store again, and watchers get the difference. Changes to trunks this replica
// holds are not taken from the feed: its own entries are newer (and its own writes
// are not even passed back by FollowChanges; Records and Record read them from the
// entries).
type mirror struct {
	// mu guards everything below. Lock order: mirror.mu, then Reconciler.mu.
	mu      sync.Mutex
	recs    map[string]registration.Record
	live    bool // recs is current
	syncing bool // a read of the store is due or running; changes wait in pending
	gen     int  // subscriptions confirmed; a read started before the last is void
	pending []cluster.Change
	// watchers is how many subscribers keep the mirror running; lastUse is when a
	// reader or watcher last used it.
	watchers int
	lastUse  time.Time
	stop     context.CancelFunc // of the running mirror; nil: stopped
	ready    chan struct{}      // closed when the running mirror first goes live
	resync   chan struct{}
	closed   bool // the reconciler has stopped: never start again
}

const (
	// mirrorIdle is how long the mirror outlives its last use.
	mirrorIdle = time.Minute
	// mirrorWait bounds how long a reader waits for the mirror to go live (the
	// first read of the store: about 2-3 s at 100,000 trunks).
	mirrorWait = 15 * time.Second
)

// useMirror starts the mirror if needed and waits until it is live or ctx ends (the
// callers allow mirrorWait); it reports whether it is live. watch counts a subscriber
// in (release with dropWatcher).
func (r *Reconciler) useMirror(ctx context.Context, watch bool) bool {
	m := &r.mirror
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	m.lastUse = r.clock()
	if watch {
		m.watchers++
	}
	if m.stop == nil {
		r.startMirrorLocked()
	}
	ready := m.ready
	m.mu.Unlock()
	select {
	case <-ready:
		return true
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
}

// dropWatcher releases what useMirror(_, true) counted in.
func (r *Reconciler) dropWatcher() {
	m := &r.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watchers > 0 {
		m.watchers--
	}
	m.lastUse = r.clock()
}

// startMirrorLocked runs the follower, the store reader and the idle check (m.mu held).
func (r *Reconciler) startMirrorLocked() {
	m := &r.mirror
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.ready, m.resync = cancel, make(chan struct{}), make(chan struct{}, 1)
	m.recs, m.live, m.syncing, m.pending = nil, false, true, nil
	ready, resync := m.ready, m.resync
	go func() {
		err := r.coord.FollowChanges(ctx,
			func() { r.mirrorSynced(ctx, resync) },
			func(ch cluster.Change) { r.mirrorChange(ctx, ch) })
		if ctx.Err() == nil {
			r.log.Warn("change feed stopped; the control API reads the store", "err", err)
			r.stopMirror()
		}
	}()
	go r.mirrorReads(ctx, resync, ready)
	go r.mirrorIdleCheck(ctx)
}

// stopMirror drops the mirror; the next use starts it again.
func (r *Reconciler) stopMirror() {
	r.mirror.mu.Lock()
	defer r.mirror.mu.Unlock()
	r.mirror.stopLocked()
}

func (m *mirror) stopLocked() {
	if m.stop != nil {
		m.stop()
	}
	m.stop, m.recs, m.live, m.pending = nil, nil, false, nil
}

// closeMirror stops the mirror for good (the reconciler stops).
func (r *Reconciler) closeMirror() {
	r.mirror.mu.Lock()
	defer r.mirror.mu.Unlock()
	r.mirror.stopLocked()
	r.mirror.closed = true
}

// mirrorIdleCheck stops the mirror once nobody has used it for mirrorIdle.
func (r *Reconciler) mirrorIdleCheck(ctx context.Context) {
	tick := time.NewTicker(mirrorIdle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m := &r.mirror
		m.mu.Lock()
		idle := m.watchers == 0 && r.clock().Sub(m.lastUse) > mirrorIdle
		m.mu.Unlock()
		if idle {
			r.stopMirror()
			return
		}
	}
}

// mirrorSynced is called when the subscription is confirmed (again): changes from
// now on wait while the store is read.
func (r *Reconciler) mirrorSynced(run context.Context, resync chan struct{}) {
	m := &r.mirror
	m.mu.Lock()
	if run.Err() != nil {
		// A mirror stopped (its context is canceled under m.mu).
		m.mu.Unlock()
		return
	}
	m.syncing, m.pending = true, nil
	m.gen++
	m.mu.Unlock()
	select {
	case resync <- struct{}{}:
	default:
	}
}

// mirrorReads reads the store each time the subscription is confirmed, installs
// the records with the changes that came meanwhile, and tells watchers what differs
// from the copy it replaces.
func (r *Reconciler) mirrorReads(ctx context.Context, resync <-chan struct{}, ready chan struct{}) {
	m := &r.mirror
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
		}
		for {
			m.mu.Lock()
			gen := m.gen
			m.mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, mirrorWait)
			recs, err := r.st.List(rctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.log.Debug("reading every replica's records failed; trying again", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			m.mu.Lock()
			if ctx.Err() != nil {
				m.mu.Unlock()
				return
			}
			if m.gen != gen {
				// Subscribed again during the read: changes may have been lost
				// before it started. The next round reads again.
				m.mu.Unlock()
				break
			}
			fresh := make(map[string]registration.Record, len(recs))
			for _, rec := range recs {
				fresh[rec.TrunkRef] = rec
			}
			for _, ch := range m.pending {
				applyChange(fresh, ch)
			}
			var events []Event
			if m.live {
				events = diffRecords(m.recs, fresh)
			}
			m.recs, m.live, m.syncing, m.pending = fresh, true, false, nil
			select {
			case <-ready:
			default:
				close(ready)
			}
			r.publishRemote(events)
			m.mu.Unlock()
			break
		}
	}
}

// mirrorChange applies one published change and tells watchers of other replicas'.
func (r *Reconciler) mirrorChange(run context.Context, ch cluster.Change) {
	m := &r.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case run.Err() != nil:
		return // a mirror stopped (its context is canceled under m.mu)
	case m.syncing:
		m.pending = append(m.pending, ch)
		return
	}
	var events []Event
	if ch.Replica != r.coord.ID() {
		for _, rec := range ch.Put {
			events = append(events, Event{Record: rec})
		}
		for _, ref := range ch.Deleted {
			rec, ok := m.recs[ref]
			if !ok {
				rec = registration.Record{TrunkRef: ref}
			}
			rec.State = registration.StateUnregistered
			events = append(events, Event{Record: rec, Removed: true})
		}
	}
	applyChange(m.recs, ch)
	r.publishRemote(events)
}

// publishRemote tells watchers of changes made by other replicas, except to trunks
// this replica holds (its own entries are newer). m.mu held.
func (r *Reconciler) publishRemote(events []Event) {
	if len(events) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range events {
		if _, mine := r.entries[ev.Record.TrunkRef]; !mine {
			r.publishLocked(ev.Record, ev.Removed)
		}
	}
}

// mirrorRecords returns a copy of the mirror's records, and whether it is live.
func (r *Reconciler) mirrorRecords() ([]registration.Record, bool) {
	m := &r.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live {
		return nil, false
	}
	out := make([]registration.Record, 0, len(m.recs))
	for _, rec := range m.recs {
		out = append(out, rec)
	}
	return out, true
}

// mirrorRecord returns ref's record from the mirror when it is live.
func (r *Reconciler) mirrorRecord(ref string) (rec registration.Record, found, live bool) {
	m := &r.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live {
		return registration.Record{}, false, false
	}
	rec, found = m.recs[ref]
	return rec, found, true
}

func applyChange(recs map[string]registration.Record, ch cluster.Change) {
	for _, rec := range ch.Put {
		recs[rec.TrunkRef] = rec
	}
	for _, ref := range ch.Deleted {
		delete(recs, ref)
	}
}

// diffRecords returns the events that turn old into fresh.
func diffRecords(old, fresh map[string]registration.Record) []Event {
	var events []Event
	for ref, rec := range fresh {
		if was, ok := old[ref]; !ok || !sameRecord(was, rec) {
			events = append(events, Event{Record: rec})
		}
	}
	for ref, rec := range old {
		if _, ok := fresh[ref]; !ok {
			rec.State = registration.StateUnregistered
			events = append(events, Event{Record: rec, Removed: true})
		}
	}
	return events
}

// sameRecord tells whether two stored versions of a record are the same write.
func sameRecord(a, b registration.Record) bool {
	return a.UpdatedAt.Equal(b.UpdatedAt) && a.CSeq == b.CSeq && a.State == b.State &&
		a.Owner == b.Owner && a.Fence == b.Fence && a.CallID == b.CallID
}
