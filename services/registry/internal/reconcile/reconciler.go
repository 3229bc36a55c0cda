// Package reconcile keeps the actual registrations (the store) in line with the desired
// ones (the trunks the API marks sendRegister): a discovery loop, a schedule of due
// work, a keyed de-duplicating queue with N workers, and an idempotent sync per trunk
// that sends REGISTERs and classifies their answers into state transitions.
package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"

	"sipreg.dev/services/registry/internal/cluster/mirror"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/registration"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/trunk"
	"sipreg.dev/services/registry/internal/upstream"
	"sipreg.dev/services/registry/internal/watch"
)

// Observer receives what the reconciler does, for metrics. Every method must be cheap
// and safe for concurrent use.
type Observer interface {
	// Sent is called after every SendMessage: outcome is a class name
	// (ok, challenge, interval-too-brief, bad-extension, rejected, transient, error).
	Sent(outcome string, took time.Duration)
	// Discovery is called after every FindBy, with its error (nil on success).
	Discovery(trunks int, err error)
	// Store is called when the store becomes unreachable or reachable again.
	Store(err error)
	// Lapsed is called when a binding expired before its refresh started (the
	// registry fell behind its schedule).
	Lapsed()
}

type nopObserver struct{}

func (nopObserver) Sent(string, time.Duration) {}
func (nopObserver) Discovery(int, error)       {}
func (nopObserver) Store(error)                {}
func (nopObserver) Lapsed()                    {}

// Options wires a Reconciler.
type Options struct {
	Spec config.Spec
	// Store keeps the records: Redis, fenced by the cluster's leases with several
	// replicas (cluster.FencedStore); nil: the memory provider (store.Nop), whose
	// records live only in the engine.
	Store     store.Store
	Trunks    upstream.Trunks
	Requester upstream.Requester
	Logger    *slog.Logger
	Observer  Observer
	// Clock is time.Now unless set (tests).
	Clock func() time.Time
	// Coord is the discovery lease, the published desired set and the change feed
	// with several replicas on one Redis (nil: one replica).
	Coord Coordinator
	// Ownership decides which trunks this replica registers: ownership.Leases with
	// several replicas; nil: ownership.All (every trunk).
	Ownership Ownership
	// WatchBacklog bounds the unread events of one subscription (watch.DefaultWatchBacklog
	// when 0).
	WatchBacklog int
	// TracerProvider, when set, gets the engine's OpenTelemetry spans (trace.go); nil:
	// no spans, at no cost.
	TracerProvider trace.TracerProvider
}

// Reconciler is the registration engine. Create with New, start with Run.
type Reconciler struct {
	spec  config.Spec
	st    store.Store
	api   upstream.Trunks
	req   upstream.Requester
	log   *slog.Logger
	obs   Observer
	clock func() time.Time
	// tracer makes the engine's spans; nil: tracing is off (trace.go).
	tracer trace.Tracer

	queue   *queue
	sched   *schedule
	limiter *rate.Limiter
	commit  *committer
	// durable: records outlive the process (Redis), so CSeqs are reserved (cseq.go).
	durable   bool
	cseqBlock uint32
	// desiredMu makes reconcileDesired single-flight: the discovery tick and the lease
	// loop never apply a desired set (and claim) at the same time.
	desiredMu sync.Mutex

	mu         sync.Mutex
	entries    map[string]*entry
	targets    map[string]int      // REGISTERs in flight per target
	parked     map[string][]string // keys waiting for a target slot
	subs       map[int]*watch.Subscription
	subsClosed bool
	nextSub    int
	apiDown    bool
	started    time.Time
	stopping   atomic.Bool

	discoveries atomic.Int64
	storeErr    atomic.Pointer[storeFault]
	// lastLapse is when a binding last expired before its refresh (unix ns; 0: never).
	lastLapse atomic.Int64

	// own decides which trunks are this replica's; coord is the rest of the cluster
	// (nil with one replica).
	own         Ownership
	coord       Coordinator
	desiredSet  []desiredTrunk // the last desired set, parsed
	desiredVer  string
	haveDesired bool

	watchBacklog int

	// mirror is every replica's records, for the control API (several replicas; nil
	// with one).
	mirror *mirror.Mirror

	// undecodable holds, for the last API answer decoded, the refs of items that could
	// not be decoded and why (owned by the discovery goroutine).
	undecodable map[string]string

	// answerSum and answerLen describe the last API answer applied (0: none).
	answerSum  atomic.Uint64
	answerLen  atomic.Int64
	pendingSum uint64
	pendingLen int64
}

// desiredTrunk is one trunk of the desired set, parsed once.
type desiredTrunk struct {
	t   trunk.Trunk
	err error
}

type storeFault struct {
	err   error
	since time.Time
}

// entry is one trunk as the reconciler tracks it; guarded by Reconciler.mu.
type entry struct {
	trunk   trunk.Trunk
	valid   bool
	wanted  bool
	rec     registration.Record
	old     *registration.Record // a binding to remove first (its trunk changed)
	uriIdx  int
	epIdx   int
	waiters []chan registration.Record
	dirty   bool // not yet persisted (store unreachable)
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
	// forcedAt is when the last forced exchange started (forces are
	// spec.ForceInterval apart).
	forcedAt time.Time
	// cseqFree: the binding's Call-ID was never written anywhere, so its CSeq needs no
	// reservation; cseqTried: the highest CSeq ceiling any write of it carried (see
	// cseq.go).
	cseqFree  bool
	cseqTried uint32
}

// New builds a Reconciler; nothing runs until Run.
func New(o Options) *Reconciler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	durable := o.Store != nil
	if o.Store == nil {
		// The memory cache: the engine's own entries are the state; nothing to copy.
		o.Store = store.Nop{}
	}
	r := &Reconciler{
		spec: o.Spec, st: o.Store, api: o.Trunks, req: o.Requester, log: o.Logger, obs: o.Observer, clock: o.Clock,
		queue:        newQueue(),
		sched:        newSchedule(o.Clock),
		limiter:      newLimiter(o.Spec.RegistersPerSecond),
		durable:      durable,
		cseqBlock:    cseqBlock,
		entries:      map[string]*entry{},
		targets:      map[string]int{},
		parked:       map[string][]string{},
		subs:         map[int]*watch.Subscription{},
		watchBacklog: o.WatchBacklog,
		coord:        o.Coord, own: o.Ownership,
		tracer: newTracer(o.TracerProvider),
	}
	if r.own == nil {
		r.own = ownership.All{}
	}
	if o.Coord != nil {
		r.mirror = mirror.New(mirror.Options{Feed: o.Coord, Store: o.Store, Log: o.Logger, Clock: o.Clock, Publish: r.publishRemote})
	}
	r.commit = newCommitter(r.writeRecords)
	if durable {
		// (The memory provider writes nowhere: no flush to trace.)
		r.commit.tracer = r.tracer
	}
	return r
}

// Run loads the store, then discovers, schedules and registers until ctx ends; then it
// drains (and unregisters when configured) within the shutdown timeout.
func (r *Reconciler) Run(ctx context.Context) error {
	r.started = r.clock()
	if r.coord == nil {
		// (With several replicas, records of other replicas are theirs: this one
		// reads a record when it claims the trunk.)
		r.loadAtStart(ctx)
	}
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var workers sync.WaitGroup
	for range max(1, r.spec.MaxInFlight) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.work(workCtx)
		}()
	}
	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		r.commit.run(workCtx)
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { r.discoverLoop(gctx); return nil })
	g.Go(func() error { r.scheduleLoop(gctx); return nil })
	g.Go(func() error { r.storeLoop(gctx); return nil })
	g.Go(func() error { r.capacityLoop(gctx); return nil })
	g.Go(func() error { r.progressLoop(gctx); return nil })
	g.Go(func() error { r.own.Run(gctx, r, r.leaseSpan); return nil })
	_ = g.Wait()

	// Shutdown: stop taking new work, let REGISTERs in flight finish (bounded).
	r.stopping.Store(true)
	r.queue.close()
	drained := make(chan struct{})
	go func() { workers.Wait(); close(drained) }()
	deadline := time.NewTimer(r.spec.ShutdownTimeout)
	defer deadline.Stop()
	select {
	case <-drained:
	case <-deadline.C:
		cancelWork()
		<-drained
	}
	if r.spec.UnregisterOnStop && r.own.Alone() {
		// Its own deadline: the drain may have used all of its own (and cancelled
		// workCtx), and the unregisters must still go out.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.spec.ShutdownTimeout)
		r.unregisterAll(uctx)
		cancel()
	}
	// Hand every trunk over at once: the others continue the bindings.
	r.own.Leave(workCtx)
	cancelWork()
	<-commitDone
	r.flushDirty(context.Background())
	if r.mirror != nil {
		r.mirror.Close()
	}
	r.closeSubs()
	return nil
}

// loadAtStart reads the records kept by an earlier run. While the cache does not answer,
// nothing is sent: the bindings at the providers are still alive, and registering
// without their records would make a second binding at each. It tries every second for
// spec.StartupCacheWait; after that it goes on from memory (trunks whose records could
// not be read get new bindings), says so, and reports the fault until the cache returns.
func (r *Reconciler) loadAtStart(ctx context.Context) {
	start := r.clock()
	for attempt := 0; ; attempt++ {
		err := r.load(ctx)
		if err == nil {
			if attempt > 0 {
				r.log.Info("cache reachable; registrations loaded", "waited", r.clock().Sub(start).Round(time.Millisecond).String())
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if waited := r.clock().Sub(start); waited >= r.spec.StartupCacheWait {
			r.log.Error("cache unreachable at start; registering from memory: trunks whose records could not be read get new bindings",
				"waited", waited.Round(time.Second).String(), "err", err)
			r.storeFailed(err)
			return
		}
		if attempt == 0 {
			r.log.Warn("cache unreachable at start; waiting for it before sending any REGISTER",
				"wait", r.spec.StartupCacheWait.String(), "err", err)
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// load reads the records kept by an earlier run: their Call-ID, From-tag and CSeq
// continue, and live bindings are refreshed on their schedule, not re-sent at once.
func (r *Reconciler) load(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, r.spec.APITimeout)
	defer cancel()
	recs, err := r.st.List(lctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		if rec.TrunkRef == "" {
			continue
		}
		e := &entry{first: true}
		e.adopt(rec)
		r.entries[rec.TrunkRef] = e
	}
	if err != nil {
		return fmt.Errorf("load registrations: %w", err)
	}
	if len(recs) > 0 {
		r.log.Info("registrations loaded from cache", "count", len(recs))
	}
	return nil
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
	var claims []int
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
		if k := r.apply(d.t, d.err, now); k != "" {
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
		r.sched.cancel(k)
		r.queue.add(k)
	}
	took, added := r.claim(ctx, set, claims, now)
	counts.added += added
	counts.toClaim = len(claims) - took
	counts.record(ctx)
}

// apply merges one discovered trunk into its entry (r.mu held). It returns the key when
// the trunk needs work now.
func (r *Reconciler) apply(t trunk.Trunk, terr error, now time.Time) string {
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
		r.scheduleFirst(e, now)
	} else if repaired {
		e.rec.LastError = ""
		return t.Ref
	}
	return ""
}

// scheduleFirst places the first REGISTER of a trunk in this run (r.mu held): a live
// binding loaded from the cache keeps its refresh time; anything else is spread over
// the startup window.
func (r *Reconciler) scheduleFirst(e *entry, now time.Time) {
	ref := e.rec.TrunkRef
	if e.rec.State == registration.StateRegistered && e.rec.ExpiresAt.After(now) && !e.rec.NextActionAt.IsZero() {
		at := e.rec.NextActionAt
		if latest := e.rec.ExpiresAt.Add(-registration.RefreshMargin); at.After(latest) {
			at = latest
		}
		r.sched.at(ref, at)
		return
	}
	if !e.rec.NextActionAt.IsZero() && e.rec.NextActionAt.After(now) && e.rec.State != registration.StatePending {
		// A retry or a long wait after a refusal survives the restart.
		r.sched.at(ref, e.rec.NextActionAt)
		return
	}
	var spread time.Duration
	if r.spec.StartupSpread > 0 {
		spread = time.Duration(mrand.Int64N(int64(r.spec.StartupSpread)))
	}
	at := now.Add(spread)
	e.rec.NextAction, e.rec.NextActionAt = registration.ActionRegister, at
	if e.rec.State == "" {
		e.rec.State = registration.StatePending
	}
	r.sched.at(ref, at)
}

func hadBinding(rec registration.Record) bool {
	switch rec.State {
	case registration.StateRegistered, registration.StateRegistering, registration.StateRetrying:
		return rec.CallID != ""
	}
	return false
}

func (r *Reconciler) freshRecord(t trunk.Trunk) registration.Record {
	return registration.Record{
		TrunkRef: t.Ref, TrunkName: t.Name, State: registration.StatePending,
		CallID: randomID(16) + "@sipreg", FromTag: randomID(8),
	}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// scheduleLoop hands due keys to the queue.
func (r *Reconciler) scheduleLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []string
	for {
		var next time.Time
		buf, next = r.sched.pop(r.clock(), buf[:0])
		for _, k := range buf {
			r.queue.add(k)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(r.clock()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.sched.wake:
		}
	}
}

// work is one worker: it takes keys from the queue until it closes.
func (r *Reconciler) work(ctx context.Context) {
	for {
		key, ok := r.queue.get()
		if !ok {
			return
		}
		r.syncKey(ctx, key)
		r.queue.done(key)
	}
}

// LocalRecords returns the registrations this replica holds, from memory (cheap: for
// metrics scraped often).
func (r *Reconciler) LocalRecords() []registration.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.appendLocal(make([]registration.Record, 0, len(r.entries)))
}

// appendLocal appends this replica's records to out (r.mu held).
func (r *Reconciler) appendLocal(out []registration.Record) []registration.Record {
	for _, e := range r.entries {
		out = append(out, e.rec)
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
		rec = e.rec
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
		r.mu.Unlock()
		if ok && !e.valid && e.wanted {
			return e.rec, fmt.Errorf("trunk %s cannot be registered: %s", ref, e.rec.LastError)
		}
		return registration.Record{}, fmt.Errorf("%w: %s", ErrUnknownTrunk, ref)
	}
	e.waiters = append(e.waiters, ch)
	// Coalesce: a REGISTER in flight answers this force too (update hands it its
	// outcome); otherwise forces of one trunk go out at least ForceInterval apart.
	var at time.Time
	if !e.inflight && !e.forcedAt.IsZero() && r.spec.ForceInterval > 0 {
		at = e.forcedAt.Add(r.spec.ForceInterval)
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
		r.sched.at(ref, at)
	case queue:
		r.sched.cancel(ref)
		r.queue.add(ref)
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
	r.mu.Lock()
	id := r.nextSub
	r.nextSub++
	sub := watch.NewSubscription(r.watchBacklog, func() {
		r.mu.Lock()
		delete(r.subs, id)
		r.mu.Unlock()
		if r.coord != nil {
			r.mirror.Release()
		}
	})
	r.subs[id] = sub
	stopped := r.subsClosed
	r.mu.Unlock()
	if stopped {
		sub.End(ErrStopping)
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

func (r *Reconciler) publishLocked(rec registration.Record, removed bool) {
	for _, sub := range r.subs {
		sub.Push(watch.Event{Record: rec, Removed: removed})
	}
}

func (r *Reconciler) closeSubs() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subsClosed = true
	for _, sub := range r.subs {
		sub.End(ErrStopping)
	}
}

// Discoveries counts FindBy calls made (tests, health).
func (r *Reconciler) Discoveries() int64 { return r.discoveries.Load() }

// StoreFault returns the current store error and since when (nil when healthy).
func (r *Reconciler) StoreFault() (time.Time, error) {
	if f := r.storeErr.Load(); f != nil {
		return f.since, f.err
	}
	return time.Time{}, nil
}

// APIDown reports whether the last discovery failed.
func (r *Reconciler) APIDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apiDown
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
