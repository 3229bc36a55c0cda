package reconcile

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
)

// commitBatch bounds one group commit.
const commitBatch = 1000

// A group commit waits for more writes after the first one of a batch: it flushes when
// commitQuiet passes without a new one, commitWindow after the first, or when the batch
// is full. Under load this turns many small Redis pipelines into a few large ones (at
// 20,000 trunks, about one round trip per 50 registrations or better).
const (
	commitQuiet  = 3 * time.Millisecond
	commitWindow = 10 * time.Millisecond
)

// committer writes records with group commit: concurrent writers share one PutMany
// (one Redis pipeline), and each waits until its record is durable. At 100,000 trunks
// this keeps the store's round trips per registration far below one.
type committer struct {
	// write stores a batch; refused lists the records a fenced write turned down
	// (another replica owns them now).
	write   func(ctx context.Context, recs []registration.Record) (refused []string, err error)
	ch      chan commitReq
	stopped chan struct{}
	// tracer traces each flush (nil: off).
	tracer trace.Tracer
}

type commitReq struct {
	rec  registration.Record
	done chan commitRes
}

// commitRes is the record as written (its CSeq ceiling stamped) and the write's error.
type commitRes struct {
	rec registration.Record
	err error
}

var errCommitterStopped = errors.New("store writer stopped")

func newCommitter(write func(ctx context.Context, recs []registration.Record) ([]string, error)) *committer {
	return &committer{write: write, ch: make(chan commitReq, commitBatch), stopped: make(chan struct{})}
}

// errRefused is the answer to a fenced write that another replica's lease turned down.
var errRefused = cluster.ErrRefused

// put writes rec and waits for the batch it joined; it returns the record as written.
func (c *committer) put(rec registration.Record) (registration.Record, error) {
	req := commitReq{rec: rec, done: make(chan commitRes, 1)}
	select {
	case c.ch <- req:
	case <-c.stopped:
		return rec, errCommitterStopped
	}
	select {
	case res := <-req.done:
		return res.rec, res.err
	case <-c.stopped:
		// The writer may still have answered before it stopped.
		select {
		case res := <-req.done:
			return res.rec, res.err
		default:
			return rec, errCommitterStopped
		}
	}
}

// run writes batches until ctx ends, then flushes what is queued.
func (c *committer) run(ctx context.Context) {
	defer close(c.stopped)
	batch := make([]commitReq, 0, commitBatch)
	recs := make([]registration.Record, 0, commitBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		recs = recs[:0]
		for _, b := range batch {
			recs = append(recs, b.rec)
		}
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		wctx, span := startFlush(wctx, c.tracer, len(recs))
		refused, err := c.write(wctx, recs)
		endFlush(span, len(refused), err)
		cancel()
		no := make(map[string]bool, len(refused))
		for _, ref := range refused {
			no[ref] = true
		}
		for i, b := range batch {
			if err == nil && no[b.rec.TrunkRef] {
				b.done <- commitRes{recs[i], errRefused}
				continue
			}
			b.done <- commitRes{recs[i], err}
		}
		batch = batch[:0]
	}
	// wait fires when the batch is due: commitQuiet after its last request, but no later
	// than commitWindow after its first (deadline). It runs only while a batch is open.
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	var deadline time.Time
	for {
		var due <-chan time.Time
		if len(batch) > 0 {
			due = wait.C
		}
		select {
		case <-ctx.Done():
			wait.Stop()
			for {
				select {
				case req := <-c.ch:
					batch = append(batch, req)
					if len(batch) == commitBatch {
						flush()
					}
				default:
					flush()
					return
				}
			}
		case <-due:
			flush()
		case req := <-c.ch:
			if len(batch) == 0 {
				deadline = time.Now().Add(commitWindow)
			}
			batch = append(batch, req)
		drain:
			for len(batch) < commitBatch {
				select {
				case more := <-c.ch:
					batch = append(batch, more)
				default:
					break drain
				}
			}
			left := time.Until(deadline)
			if len(batch) == commitBatch || left <= 0 {
				wait.Stop()
				flush()
				continue
			}
			wait.Reset(min(commitQuiet, left))
		}
	}
}

// persist writes one trunk's record. While the store is down nothing blocks: the record
// is marked dirty and written when the store returns.
func (r *Reconciler) persist(key string, rec registration.Record) {
	if !r.durable {
		// The memory cache writes nowhere: no batch to share, so no group commit
		// window to wait out. The record is stamped as a write would (cseq.go).
		_, _ = r.writeRecords(context.Background(), []registration.Record{rec})
		return
	}
	if r.storeErr.Load() == nil {
		_, err := r.commit.put(rec)
		if err == nil {
			return
		}
		if errors.Is(err, errRefused) {
			// The lease is gone: taken by another replica, or lost with Redis (a
			// restart). Take it back if nobody holds it; this memory is then the
			// freshest state of the binding.
			r.lose(r.reclaim(context.Background(), []string{key}))
			return
		}
		if !errors.Is(err, errCommitterStopped) {
			r.storeFailed(err)
		}
	}
	r.mu.Lock()
	if e := r.entries[key]; e != nil {
		e.dirty = true
	}
	r.mu.Unlock()
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
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f := r.storeErr.Load()
		if f == nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := r.st.Ping(pctx)
		cancel()
		if err != nil {
			continue
		}
		if err := r.flushDirty(ctx); err != nil {
			continue
		}
		r.storeErr.Store(nil)
		r.log.Info("cache reachable again", "down_for", r.clock().Sub(f.since).Round(time.Second).String())
		r.obs.Store(nil)
	}
}

// flushDirty writes every record not yet persisted.
func (r *Reconciler) flushDirty(ctx context.Context) error {
	r.mu.Lock()
	var recs []registration.Record
	var keys []string
	for k, e := range r.entries {
		if e.dirty {
			recs = append(recs, e.rec)
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
