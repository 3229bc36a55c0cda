// Package reconcile keeps the actual registrations (the store) in line with the desired
// ones (the trunks the API marks sendRegister): a discovery loop, a schedule of due
// work, a keyed de-duplicating queue with N workers, and an idempotent sync per trunk
// that sends REGISTERs and classifies their answers into state transitions.
//
// What is not the engine's own state lives in the packages it drives: the desired
// set (desired), ownership and leases (cluster/ownership), the record of each
// transition (registration.Next), one REGISTER exchange (exchange), the schedule and
// queue (workqueue), group commits (groupcommit), progress and lapse reporting
// (progress). What stays here, in files by job, is the per-trunk entry and every
// step that reads or changes it under the one lock: applying the desired set and
// claims (discovery.go, first.go, cluster.go), a sync and its outcome (sync.go,
// exchange.go), the CSeq reservations that make a binding safe to continue after a
// crash or a takeover (cseq.go), persisting (persist.go) and the read side (view.go,
// explain.go). These steps share invariants on one entry (a lease is checked at the
// moment of sending, a CSeq never goes out above the durable ceiling, a Force joins
// the exchange in flight); splitting them across packages would export the entry and
// its lock, so the package stays one, larger than the others.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"sipreg.dev/services/registry/internal/cluster/mirror"
	"sipreg.dev/services/registry/internal/cluster/ownership"
	"sipreg.dev/services/registry/internal/config"
	"sipreg.dev/services/registry/internal/desired"
	"sipreg.dev/services/registry/internal/exchange"
	"sipreg.dev/services/registry/internal/groupcommit"
	"sipreg.dev/services/registry/internal/progress"
	"sipreg.dev/services/registry/internal/store"
	"sipreg.dev/services/registry/internal/upstream"
	"sipreg.dev/services/registry/internal/watch"
	"sipreg.dev/services/registry/internal/workqueue"
)

// Reconciler is the registration engine. Create with New, start with Run.
type Reconciler struct {
	spec  config.Spec
	st    store.Store
	req   upstream.Requester
	log   *slog.Logger
	obs   Observer
	clock func() time.Time
	// tracer makes the engine's spans; nil: tracing is off (trace.go).
	tracer trace.Tracer
	// xr runs REGISTER exchanges.
	xr exchange.Runner

	queue   *workqueue.Queue
	sched   *workqueue.Schedule[entry]
	limiter *rate.Limiter
	// sending bounds the SendMessage calls in flight (spec.maxInFlight): a slot is a
	// value in the channel. (A channel rather than semaphore.Weighted, which allocates
	// a waiter whenever it is contended, as it is at every big start; blocked senders
	// are served in order just the same.)
	sending chan struct{}
	commit  *groupcommit.Committer
	// durable: records outlive the process (Redis), so CSeqs are reserved (cseq.go).
	durable   bool
	cseqBlock uint32
	// collect runs a garbage collection after a pass that added collectAfter trunks or
	// more (runtime.GC; tests count the calls).
	collect      func()
	collectAfter int
	// desiredMu makes reconcileDesired single-flight: the discovery tick and the lease
	// loop never apply a desired set (and claim) at the same time.
	desiredMu sync.Mutex

	mu       sync.Mutex
	entries  map[string]*entry
	targets  map[targetKey]int      // REGISTERs in flight per target
	parked   map[targetKey][]string // keys waiting for a target slot
	hub      *watch.Hub
	started  time.Time
	stopping atomic.Bool

	storeErr atomic.Pointer[storeFault]
	// lapses remembers when a binding last expired before its refresh.
	lapses progress.Lapses
	// quietFirst: a big start is under way (progress.Min or more trunks added at once),
	// reported by progress lines: each trunk's first "registered" goes to debug.
	quietFirst atomic.Bool
	// progressDue: a pass queued progress.Min or more trunks at once; the progress
	// loop counts the entries at its next step (see progressLoop).
	progressDue atomic.Bool
	// progressWalks counts the progress loop's walks over the entries.
	progressWalks atomic.Int64

	// own decides which trunks are this replica's; coord is the rest of the cluster
	// (nil with one replica).
	own   Ownership
	coord Coordinator
	// src fetches the desired set (FindBy, or the set the discovery leader published).
	src *desired.Source

	// mirror is every replica's records, for the control API (several replicas; nil
	// with one).
	mirror *mirror.Mirror
}

type storeFault struct {
	err   error
	since time.Time
}

// workersPerSlot is how many workers run per SendMessage slot (spec.maxInFlight) with
// the Redis cache. A worker does not wait for its outcome's write (persist queues it
// for the group commit), but one continuing a binding from the store waits for a CSeq
// reservation's write (cseq.go) and holds no slot meanwhile: two a slot keep the slots
// busy then. (While outcomes were written synchronously, up to groupcommit.Window, 8 a
// slot were needed, and 6 of them queued for a slot when nothing was waited for,
// parked and woken once per REGISTER.) A registrar still has at most a quarter of the
// slots' worth of syncs (perTargetCap).
const workersPerSlot = 2

// memoryWorkersPerSlot is workersPerSlot with the memory cache, whose writes never
// wait: a worker per slot keeps the slots busy (a slot is idle only while its worker
// records an outcome, microseconds against a REGISTER's round trip), and every worker
// more only queues for a slot, parked and woken once per REGISTER. Interleaved runs
// at 100,000 trunks: 8 -> 2 a slot took 6 % off the start's CPU, 2 -> 1 another 6 %,
// with the same time to register them all.
const memoryWorkersPerSlot = 1

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
		spec: o.Spec, st: o.Store, req: o.Requester, log: o.Logger, obs: o.Observer, clock: o.Clock,
		queue:        workqueue.New(),
		sched:        workqueue.NewSchedule(entryTimer),
		limiter:      newLimiter(o.Spec.RegistersPerSecond),
		sending:      make(chan struct{}, max(1, o.Spec.MaxInFlight)),
		durable:      durable,
		cseqBlock:    cseqBlock,
		collect:      runtime.GC,
		collectAfter: collectAfter,
		entries:      map[string]*entry{},
		targets:      map[targetKey]int{},
		parked:       map[targetKey][]string{},
		hub:          watch.NewHub(o.WatchBacklog),
		coord:        o.Coord, own: o.Ownership,
		tracer: newTracer(o.TracerProvider),
	}
	if r.own == nil {
		r.own = ownership.All{}
	}
	r.src = r.newSource(o.Trunks)
	if o.Coord != nil {
		r.mirror = mirror.New(mirror.Options{Feed: o.Coord, Store: o.Store, Log: o.Logger, Clock: o.Clock, Publish: r.publishRemote})
	}
	r.xr = exchange.Runner{
		Settings: exchange.Settings{Gin: o.Spec.Gin, EdgePortAuth: o.Spec.AuthMode == config.AuthEdgePort,
			Methods: o.Spec.Methods, UserAgent: o.Spec.UserAgent},
		Observe: r.obs.Sent, Log: r.log, Tracer: r.tracer,
	}
	if r.durable {
		// (The memory provider writes nowhere: no committer, whose queue and batch
		// arrays would hold 2 MB for nothing.)
		r.commit = groupcommit.New(r.writeRecords, r.tracer)
		r.commit.OnWritten = r.written
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

	// Workers per SendMessage slot: see workersPerSlot.
	var workers sync.WaitGroup
	perSlot := workersPerSlot
	if !r.durable {
		perSlot = memoryWorkersPerSlot
	}
	for range max(1, r.spec.MaxInFlight) * perSlot {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.work(workCtx)
		}()
	}
	commitDone := make(chan struct{})
	if r.commit != nil {
		go func() {
			defer close(commitDone)
			r.commit.Run(workCtx)
		}()
	} else {
		close(commitDone)
	}

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
	r.queue.Close()
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
	// The outcomes queued for the store are written before the leases go (persist does
	// not wait for its write), so the others continue from them.
	if r.durable {
		r.commit.Sync()
	}
	// Hand every trunk over at once: the others continue the bindings.
	r.own.Leave(workCtx)
	cancelWork()
	<-commitDone
	r.flushDirty(context.Background())
	if r.mirror != nil {
		r.mirror.Close()
	}
	r.hub.End(ErrStopping)
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

// scheduleLoop hands due keys to the queue.
func (r *Reconciler) scheduleLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []*entry
	var keys []string
	for {
		var next time.Time
		buf, next = r.sched.Pop(r.clock(), buf[:0])
		keys = keys[:0]
		r.mu.Lock()
		for _, e := range buf {
			keys = append(keys, e.trunk.Ref)
		}
		r.mu.Unlock()
		clear(buf)
		r.queue.AddAll(keys)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(r.clock()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.sched.Wake():
		}
	}
}

// work is one worker: it takes keys from the queue until it closes.
func (r *Reconciler) work(ctx context.Context) {
	for {
		key, ok := r.queue.Get()
		if !ok {
			return
		}
		r.syncKey(ctx, key)
		r.queue.Done(key)
	}
}
