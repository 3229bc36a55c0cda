// Package mirror is the cluster-wide read model of the registrations: with several
// replicas on one Redis, each replica's control API answers for every trunk, and the
// Mirror is its copy of every replica's records. It is read once from the store, then
// kept current by the changes each replica publishes in the same Lua call as its writes
// (cluster.FollowChanges). It runs only while used: while a watcher holds it, and for
// Idle after the last read; then it is dropped, so a replica nobody asks carries only
// its own trunks.
//
// Consistency: a change is published after it is stored, and the store is read only
// once the subscription is confirmed, with the changes that arrive during the read
// queued and applied after it in order. So the copy misses nothing from the moment it
// is live; a lost connection (whose changes are gone) makes it read the store again,
// and Publish gets the difference. This replica's own writes are not passed back by
// FollowChanges, nor published: the engine's own entries are newer.
//
// The Mirror shares no lock with the engine: Publish is called with none of the
// Mirror's state locked (only the lock that keeps deliveries in order), and the Mirror
// never calls the engine otherwise.
package mirror

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/watch"
)

const (
	// Idle is how long the mirror outlives its last use.
	Idle = time.Minute
	// Wait bounds how long a reader should wait for the mirror to go live (the first
	// read of the store: about 2-3 s at 100,000 trunks).
	Wait = 15 * time.Second
)

// Feed is the change feed of every replica's writes (*cluster.Cluster).
type Feed interface {
	ID() string
	FollowChanges(ctx context.Context, synced func(), onChange func(cluster.Change)) error
}

// Lister reads every stored record (the store).
type Lister interface {
	List(ctx context.Context) ([]registration.Record, error)
}

// Options wires a Mirror.
type Options struct {
	Feed  Feed
	Store Lister
	Log   *slog.Logger
	// Clock is time.Now unless set.
	Clock func() time.Time
	// Publish gets other replicas' changes, in order (nil: dropped).
	Publish func([]watch.Event)
}

// Mirror is the copy of every replica's records. Safe for concurrent use.
type Mirror struct {
	o Options
	// deliver keeps Publish calls in the order of the changes; taken before mu.
	deliver sync.Mutex

	// mu guards everything below.
	mu      sync.Mutex
	recs    map[string]registration.Record
	live    bool // recs is current
	syncing bool // a read of the store is due or running; changes wait in pending
	gen     int  // subscriptions confirmed; a read started before the last is void
	pending []cluster.Change
	// watchers is how many holders keep the mirror running; lastUse is when a reader
	// or watcher last used it.
	watchers int
	lastUse  time.Time
	stop     context.CancelFunc // of the running mirror; nil: stopped
	ready    chan struct{}      // closed when the running mirror first goes live
	resync   chan struct{}
	closed   bool // closed for good: never start again
}

// New returns a stopped Mirror; the first Use starts it.
func New(o Options) *Mirror {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Publish == nil {
		o.Publish = func([]watch.Event) {}
	}
	return &Mirror{o: o}
}

// Use starts the mirror if needed and waits until it is live or ctx ends (allow Wait);
// it reports whether it is live. hold counts a watcher in (release with Release).
func (m *Mirror) Use(ctx context.Context, hold bool) bool {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	m.lastUse = m.o.Clock()
	if hold {
		m.watchers++
	}
	if m.stop == nil {
		m.startLocked()
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

// Release gives back what Use(_, true) counted in.
func (m *Mirror) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watchers > 0 {
		m.watchers--
	}
	m.lastUse = m.o.Clock()
}

// Records returns a copy of every record, and whether the mirror is live (nothing
// when it is not).
func (m *Mirror) Records() ([]registration.Record, bool) {
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

// Record returns ref's record when the mirror is live.
func (m *Mirror) Record(ref string) (rec registration.Record, found, live bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live {
		return registration.Record{}, false, false
	}
	rec, found = m.recs[ref]
	return rec, found, true
}

// Close stops the mirror for good.
func (m *Mirror) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopLocked()
	m.closed = true
}

// startLocked runs the follower, the store reader and the idle check (m.mu held).
func (m *Mirror) startLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.ready, m.resync = cancel, make(chan struct{}), make(chan struct{}, 1)
	m.recs, m.live, m.syncing, m.pending = nil, false, true, nil
	ready, resync := m.ready, m.resync
	go func() {
		err := m.o.Feed.FollowChanges(ctx,
			func() { m.synced(ctx, resync) },
			func(ch cluster.Change) { m.change(ctx, ch) })
		if ctx.Err() == nil {
			m.o.Log.Warn("change feed stopped; the control API reads the store", "err", err)
			m.mu.Lock()
			m.stopLocked()
			m.mu.Unlock()
		}
	}()
	go m.reads(ctx, resync, ready)
	go m.idleCheck(ctx)
}

// stopLocked drops the mirror; the next use starts it again.
func (m *Mirror) stopLocked() {
	if m.stop != nil {
		m.stop()
	}
	m.stop, m.recs, m.live, m.pending = nil, nil, false, nil
}

// idleCheck stops the mirror once nobody has used it for Idle.
func (m *Mirror) idleCheck(ctx context.Context) {
	tick := time.NewTicker(Idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		idle := m.watchers == 0 && m.o.Clock().Sub(m.lastUse) > Idle
		if idle {
			m.stopLocked()
		}
		m.mu.Unlock()
		if idle {
			return
		}
	}
}

// synced is called when the subscription is confirmed (again): changes from now on
// wait while the store is read.
func (m *Mirror) synced(run context.Context, resync chan struct{}) {
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

// reads reads the store each time the subscription is confirmed, installs the records
// with the changes that came meanwhile, and publishes what differs from the copy it
// replaces.
func (m *Mirror) reads(ctx context.Context, resync <-chan struct{}, ready chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
		}
		for !m.readOnce(ctx, ready) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// readOnce reads the store and installs it; false: the read failed, try again.
func (m *Mirror) readOnce(ctx context.Context, ready chan struct{}) bool {
	m.mu.Lock()
	gen := m.gen
	m.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, Wait)
	recs, err := m.o.Store.List(rctx)
	cancel()
	if ctx.Err() != nil {
		return true
	}
	if err != nil {
		m.o.Log.Debug("reading every replica's records failed; trying again", "err", err)
		return false
	}
	m.deliver.Lock()
	defer m.deliver.Unlock()
	m.mu.Lock()
	if ctx.Err() != nil || m.gen != gen {
		// Stopped, or subscribed again during the read (changes may have been lost
		// before it started): the next round reads again.
		m.mu.Unlock()
		return true
	}
	fresh := make(map[string]registration.Record, len(recs))
	for _, rec := range recs {
		fresh[rec.TrunkRef] = rec
	}
	for _, ch := range m.pending {
		applyChange(fresh, ch)
	}
	var events []watch.Event
	if m.live {
		events = diffRecords(m.recs, fresh)
	}
	m.recs, m.live, m.syncing, m.pending = fresh, true, false, nil
	select {
	case <-ready:
	default:
		close(ready)
	}
	m.mu.Unlock()
	if len(events) > 0 {
		m.o.Publish(events)
	}
	return true
}

// change applies one published change and publishes other replicas'.
func (m *Mirror) change(run context.Context, ch cluster.Change) {
	m.deliver.Lock()
	defer m.deliver.Unlock()
	m.mu.Lock()
	switch {
	case run.Err() != nil:
		m.mu.Unlock()
		return // a mirror stopped (its context is canceled under m.mu)
	case m.syncing:
		m.pending = append(m.pending, ch)
		m.mu.Unlock()
		return
	}
	var events []watch.Event
	if ch.Replica != m.o.Feed.ID() {
		for _, rec := range ch.Put {
			events = append(events, watch.Event{Record: rec})
		}
		for _, ref := range ch.Deleted {
			rec, ok := m.recs[ref]
			if !ok {
				rec = registration.Record{TrunkRef: ref}
			}
			rec.State = registration.StateUnregistered
			events = append(events, watch.Event{Record: rec, Removed: true})
		}
	}
	applyChange(m.recs, ch)
	m.mu.Unlock()
	if len(events) > 0 {
		m.o.Publish(events)
	}
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
func diffRecords(old, fresh map[string]registration.Record) []watch.Event {
	var events []watch.Event
	for ref, rec := range fresh {
		if was, ok := old[ref]; !ok || !sameRecord(was, rec) {
			events = append(events, watch.Event{Record: rec})
		}
	}
	for ref, rec := range old {
		if _, ok := fresh[ref]; !ok {
			rec.State = registration.StateUnregistered
			events = append(events, watch.Event{Record: rec, Removed: true})
		}
	}
	return events
}

// sameRecord tells whether two stored versions of a record are the same write.
func sameRecord(a, b registration.Record) bool {
	return a.UpdatedAt.Equal(b.UpdatedAt) && a.CSeq == b.CSeq && a.State == b.State &&
		a.Owner == b.Owner && a.Fence == b.Fence && a.CallID == b.CallID
}
