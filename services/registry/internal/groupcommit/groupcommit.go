// Package groupcommit writes registration records with group commit: writers that
// arrive close together share one write (one Redis pipeline), and each waits until its
// record is durable (Put), or is told later (Enqueue, OnWritten). At 100,000 trunks this keeps the store's round trips per
// registration far below one (about one per 50 registrations at 20,000 trunks).
//
// A batch opens with its first record and is written when Quiet passes without a new
// one, Window after the first, or when it holds Batch records, whichever comes first.
// The memory cache has no store to share, so the engine does not use a Committer for
// it.
package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"sipreg.dev/services/registry/internal/cluster"
	"sipreg.dev/services/registry/internal/registration"
)

// Batch bounds one group commit.
const Batch = 1000

// Quiet and Window bound how long a batch stays open (see the package doc).
const (
	Quiet  = 3 * time.Millisecond
	Window = 10 * time.Millisecond
)

// writeTimeout bounds one batch's write.
const writeTimeout = 5 * time.Second

// ErrStopped is the answer to a Put after Run returned.
var ErrStopped = errors.New("store writer stopped")

// ErrRefused is the answer to a record a fenced write turned down: another replica owns
// the trunk now. It is cluster.ErrRefused, so errors.Is matches either.
var ErrRefused = cluster.ErrRefused

// Write stores a batch; refused lists the refs of the records a fenced write turned
// down (another replica owns them now). It may stamp the records in place (the CSeq
// ceiling): Put returns each record as Write left it.
type Write func(ctx context.Context, recs []registration.Record) (refused []string, err error)

// Committer batches Puts into Writes; Run does the writing.
type Committer struct {
	write   Write
	ch      chan request
	stopped chan struct{}
	tracer  trace.Tracer // traces each write (nil: off)
	// OnWritten, set before Run, is told the outcome of each record Enqueued: the
	// record as written and the write's error (ErrRefused for a record the fenced write
	// turned down). It is called from Run's goroutine after the batch's write, in the
	// batch's order, so it must not wait for the Committer.
	OnWritten func(registration.Record, error)
	// closing is set when Run starts its last drain; enqueuing counts the Enqueues
	// under way, which that drain waits out, so that a record Enqueue took is written.
	closing   atomic.Bool
	enqueuing atomic.Int64
}

type request struct {
	rec  registration.Record
	done chan result // nil: Enqueued
	sync bool        // Sync's: no record; answered once what came before is written
}

// result is the record as written and the write's error.
type result struct {
	rec registration.Record
	err error
}

// New returns a Committer writing with write; tracer, if not nil, makes a
// registry.store.write span per batch (its size and the records refused).
func New(write Write, tracer trace.Tracer) *Committer {
	return &Committer{write: write, ch: make(chan request, Batch), stopped: make(chan struct{}), tracer: tracer}
}

// Put writes rec and waits for the batch it joined; it returns the record as written.
func (c *Committer) Put(rec registration.Record) (registration.Record, error) {
	req := request{rec: rec, done: make(chan result, 1)}
	select {
	case c.ch <- req:
	case <-c.stopped:
		return rec, ErrStopped
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
			return rec, ErrStopped
		}
	}
}

// Enqueue adds rec to the next batch and returns at once: the outcome goes to
// OnWritten. A writer that need not wait for the write (the engine's outcomes: nothing
// it does next depends on the write having landed) holds no goroutine meanwhile, and
// allocates nothing. It reports false, having queued nothing, when Run has returned.
func (c *Committer) Enqueue(rec registration.Record) bool {
	c.enqueuing.Add(1)
	defer c.enqueuing.Add(-1)
	if c.closing.Load() {
		return false
	}
	c.ch <- request{rec: rec} // Run drains the channel until no Enqueue is under way
	return true
}

// Sync waits until every record Put or Enqueued before it is written (and reported),
// or Run has returned.
func (c *Committer) Sync() {
	req := request{done: make(chan result, 1), sync: true}
	select {
	case c.ch <- req:
	case <-c.stopped:
		return
	}
	select {
	case <-req.done:
	case <-c.stopped:
	}
}

// Run writes batches until ctx ends, then writes what is queued and returns; every
// later Put fails with ErrStopped.
func (c *Committer) Run(ctx context.Context) {
	defer close(c.stopped)
	batch := make([]request, 0, Batch)
	recs := make([]registration.Record, 0, Batch)
	urgent := false // a Sync is in the batch: write it now
	flush := func() {
		if len(batch) == 0 {
			return
		}
		recs = recs[:0]
		for _, b := range batch {
			if !b.sync {
				recs = append(recs, b.rec)
			}
		}
		var refused []string
		var err error
		if len(recs) > 0 {
			refused, err = c.writeBatch(recs)
		}
		no := make(map[string]bool, len(refused))
		for _, ref := range refused {
			no[ref] = true
		}
		i := 0
		for _, b := range batch {
			if b.sync {
				b.done <- result{}
				continue
			}
			rec := recs[i]
			i++
			berr := err
			if err == nil && no[b.rec.TrunkRef] {
				berr = ErrRefused
			}
			switch {
			case b.done != nil:
				b.done <- result{rec, berr}
			case c.OnWritten != nil:
				c.OnWritten(rec, berr)
			}
		}
		urgent = false
		clear(batch)
		batch = batch[:0]
	}
	// wait fires when the batch is due: Quiet after its last request, but no later than
	// Window after its first (deadline). It runs only while a batch is open.
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
			c.closing.Store(true)
			for {
				select {
				case req := <-c.ch:
					batch = append(batch, req)
					if len(batch) == Batch {
						flush()
					}
				default:
					if c.enqueuing.Load() > 0 {
						// An Enqueue that saw the Committer open is sending.
						runtime.Gosched()
						continue
					}
					if len(c.ch) > 0 {
						continue // sent just before it ended
					}
					flush()
					return
				}
			}
		case <-due:
			flush()
		case req := <-c.ch:
			if len(batch) == 0 {
				deadline = time.Now().Add(Window)
			}
			batch = append(batch, req)
			urgent = urgent || req.sync
		drain:
			for len(batch) < Batch {
				select {
				case more := <-c.ch:
					batch = append(batch, more)
					urgent = urgent || more.sync
				default:
					break drain
				}
			}
			left := time.Until(deadline)
			if len(batch) == Batch || left <= 0 || urgent {
				wait.Stop()
				flush()
				continue
			}
			wait.Reset(min(Quiet, left))
		}
	}
}

// Attribute keys of the registry.store.write span.
const (
	attrBatch   = attribute.Key("registry.batch.size")
	attrRefused = attribute.Key("registry.batch.refused")
)

// writeBatch writes one batch under its own deadline (the engine's context may already
// be done: what is queued at a stop is still written), in a span when tracing is on.
func (c *Committer) writeBatch(recs []registration.Record) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if c.tracer == nil {
		return c.write(ctx, recs)
	}
	ctx, span := c.tracer.Start(ctx, "registry.store.write", trace.WithAttributes(attrBatch.Int(len(recs))))
	defer span.End()
	refused, err := c.write(ctx, recs)
	span.SetAttributes(attrRefused.Int(len(refused)))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return refused, err
}
